use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(range_key)]
    sk: String,
    #[vhs(range_key)]
    version: u32,
}

fn main() {}
