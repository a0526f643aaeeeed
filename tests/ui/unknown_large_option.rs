use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large(mime = "text/html")]
    html: Option<String>,
    #[large = "image/png"]
    image: Option<Vec<u8>>,
}

fn main() {}
