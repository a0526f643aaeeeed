use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(version)]
    #[large]
    version: Option<u64>,
}

fn main() {}
