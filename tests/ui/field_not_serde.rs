use vhs::Model;

struct Opaque;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    body: Opaque,
}

fn main() {}
