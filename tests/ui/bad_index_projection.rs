use vhs::Model;

#[derive(Model, serde::Serialize, serde::Deserialize)]
#[vhs(index(name = "missing-index", keys_only))]
#[vhs(index(name = "by-a", keys_only, include = ["b"]))]
#[vhs(index(name = "by-b", include = ["pk", "nope", "c"]))]
#[vhs(index(name = "by-b", keys_only))]
#[vhs(index(keys_only))]
struct Event {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(gsi_hash = "by-a")]
    a: String,
    #[vhs(gsi_hash = "by-b")]
    b: String,
    c: u32,
}

fn main() {}
