use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(hash_key)]
    id: String,
}

fn main() {}
