use vhs::Model;

#[derive(Model)]
#[vhs(crate = "my vhs")]
struct Document {
    #[vhs(hash_key)]
    pk: String,
}

fn main() {}
