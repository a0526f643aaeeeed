use vhs::Model;

#[derive(Model)]
#[vhs(table = "")]
struct Document {
    #[vhs(hash_key, rename = "")]
    pk: String,
    #[large(content_type = "")]
    image: Option<Vec<u8>>,
}

fn main() {}
