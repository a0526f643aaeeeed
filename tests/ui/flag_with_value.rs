use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key = true)]
    pk: String,
    #[vhs(version = "v")]
    version: u64,
}

fn main() {}
