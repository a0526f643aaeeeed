use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: f64,
    #[vhs(range_key)]
    sk: Option<String>,
}

fn main() {}
