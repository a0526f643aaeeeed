use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(range_key)]
    sk: String,
    body: String,
}

fn main() {}
