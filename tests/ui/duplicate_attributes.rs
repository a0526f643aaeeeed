use vhs::Model;

#[derive(Model)]
#[vhs(table = "documents")]
#[vhs(table = "docs")]
struct Document {
    #[vhs(hash_key, hash_key)]
    pk: String,
    #[vhs(rename = "a", rename = "b")]
    body: String,
    #[large]
    #[large]
    html: Option<String>,
}

fn main() {}
