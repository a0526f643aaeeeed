use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(version)]
    version: String,
}

#[derive(Model)]
struct Optional {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(version)]
    version: Option<u64>,
}

fn main() {}
