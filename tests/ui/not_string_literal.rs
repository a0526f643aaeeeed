use vhs::Model;

#[derive(Model)]
#[vhs(table = documents)]
struct Document {
    #[vhs(hash_key, rename = 1)]
    pk: String,
    #[large(content_type = image_png)]
    image: Option<Vec<u8>>,
    #[vhs(rename)]
    body: String,
}

fn main() {}
