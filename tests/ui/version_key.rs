use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key, version)]
    pk: u64,
    #[vhs(version)]
    #[vhs(range_key)]
    sk: u64,
    #[vhs(version)]
    version: u64,
}

fn main() {}
