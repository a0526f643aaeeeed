use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large]
    count: Option<u32>,
}

fn main() {}
