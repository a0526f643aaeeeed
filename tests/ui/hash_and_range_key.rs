use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key, range_key)]
    pk: String,
}

fn main() {}
