use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(version)]
    version: u64,
    #[vhs(version, rename = "rev")]
    revision: u64,
}

fn main() {}
