use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(sort_key)]
    sk: String,
    #[vhs(table = "documents")]
    body: String,
}

fn main() {}
