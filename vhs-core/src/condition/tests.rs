use super::*;
use crate::model::Item;

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn evaluates_like_dynamodb() {
    let i = item(&[
        ("n", AttributeValue::N("10".into())),
        ("s", AttributeValue::S("draft-1".into())),
    ]);
    assert!(Condition::exists("n").evaluate(Some(&i)));
    assert!(!Condition::exists("n").evaluate(None));
    assert!(Condition::not_exists("n").evaluate(None));
    assert!(Condition::gt("n", 9).evaluate(Some(&i)));
    assert!(
        Condition::lt("n", 100).evaluate(Some(&i)),
        "numeric, not lexical"
    );
    assert!(
        !Condition::eq("n", "10").evaluate(Some(&i)),
        "type mismatch"
    );
    assert!(Condition::ne("missing", 1).evaluate(Some(&i)));
    assert!(!Condition::eq("missing", 1).evaluate(Some(&i)));
    assert!(Condition::begins_with("s", "draft").evaluate(Some(&i)));
    let c = Condition::eq("s", "x")
        .or(Condition::ge("n", 10))
        .and(!Condition::exists("z"));
    assert!(c.evaluate(Some(&i)));
}

#[test]
fn renders_with_placeholders_only() {
    let mut p = Placeholders::default();
    let c = Condition::exists("pk").and(Condition::eq("a b", 1));
    let s = c.render(&mut p);
    assert_eq!(s, "(attribute_exists(#n0)) AND (#n1 = :v0)");
    assert_eq!(p.names["#n1"], "a b");
    let mut p = Placeholders::with_tag("u");
    let u = ItemUpdate {
        set: vec![("x".into(), AttributeValue::S("1".into()))],
        remove: vec!["y".into()],
        add: vec![("n".into(), 1)],
        ..ItemUpdate::default()
    };
    assert_eq!(
        u.render(&mut p),
        "SET #un0 = :uv0 REMOVE #un1 ADD #un2 :uv1"
    );
    let mut item = Item::new();
    u.apply(&mut item);
    u.apply(&mut item);
    assert_eq!(item["n"], AttributeValue::N("2".into()));
}

#[test]
fn a_lone_condition_gets_no_parentheses_of_its_own() {
    // DynamoDB refuses redundant parentheses such as `((a = :v))`.
    let mut p = Placeholders::default();
    let nested = Condition::exists("pk").and(Condition::And(vec![Condition::eq("a", 1)]));
    assert_eq!(
        nested.render(&mut p),
        "(attribute_exists(#n0)) AND (#n1 = :v0)"
    );
    let mut p = Placeholders::default();
    let lone = Condition::Or(vec![Condition::And(vec![Condition::eq("a", 1)])]);
    assert_eq!(lone.render(&mut p), "#n0 = :v0");
}
