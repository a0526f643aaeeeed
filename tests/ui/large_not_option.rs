use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large]
    html: String,
    #[large(content_type = "image/png")]
    image: Vec<u8>,
}

fn main() {}
