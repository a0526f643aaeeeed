use vhs::Model;

#[derive(Model)]
#[vhs(tabel = "documents")]
struct Document {
    #[vhs(hash_key)]
    pk: String,
}

#[derive(Model)]
#[vhs(hash_key)]
struct Misplaced {
    #[vhs(hash_key)]
    pk: String,
}

#[derive(Model)]
#[vhs(version)]
struct Unversioned {
    #[vhs(hash_key)]
    pk: String,
}

fn main() {}
