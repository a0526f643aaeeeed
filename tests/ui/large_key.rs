use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(range_key)]
    #[large]
    sk: Option<String>,
}

fn main() {}
