use vhs::Model;

#[derive(Model)]
#[vhs]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs = "body"]
    body: String,
}

#[derive(Model)]
#[large]
struct Other {
    #[vhs(hash_key, large)]
    pk: String,
}

fn main() {}
