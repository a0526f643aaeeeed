use vhs::Model;

#[derive(Model)]
struct Document<T> {
    #[vhs(hash_key)]
    pk: String,
    data: T,
}

#[derive(Model)]
struct Borrowed<'a> {
    #[vhs(hash_key)]
    pk: &'a str,
}

fn main() {}
