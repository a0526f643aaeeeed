use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key = true)]
    pk: String,
}

fn main() {}
