use vhs::Model;

#[derive(Model)]
struct Doc {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(rename = "vhs:tok")]
    token: String,
}

fn main() {}
