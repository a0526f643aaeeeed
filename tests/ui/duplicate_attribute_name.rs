use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(rename = "body")]
    text: String,
    body: String,
    #[large]
    #[vhs(rename = "pk")]
    html: Option<String>,
}

fn main() {}
