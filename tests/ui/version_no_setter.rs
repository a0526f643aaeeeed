use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(version)]
    version: u64,
    title: String,
}

#[derive(Model)]
struct Unversioned {
    #[vhs(hash_key)]
    pk: String,
    title: String,
}

fn main() {
    let _ = Document::changes().set_version(2);
    let _ = Unversioned::changes().if_version(1);
}
