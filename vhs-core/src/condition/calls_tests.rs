use super::update::add_numbers;
use super::*;
use crate::model::Item;

fn n(x: &str) -> AttributeValue {
    AttributeValue::N(x.into())
}

#[test]
fn adds_decimal_numbers_exactly() {
    assert_eq!(add_numbers("1", "2").as_deref(), Some("3"));
    assert_eq!(add_numbers("0.1", "0.2").as_deref(), Some("0.3"));
    assert_eq!(add_numbers("-1.5", "1.5").as_deref(), Some("0"));
    assert_eq!(add_numbers("-0.25", "0.2").as_deref(), Some("-0.05"));
    assert_eq!(
        add_numbers("99999999999999999999999999999999999999", "1").as_deref(),
        Some("100000000000000000000000000000000000000")
    );
    assert_eq!(add_numbers("x", "1"), None);
}

#[test]
fn applies_add_append_delete_like_dynamodb() {
    let mut item = Item::new();
    let add = UpdateOp::Add;
    let set = UpdateOp::Set;
    let u = ItemUpdate {
        ops: vec![
            (
                "list".into(),
                set(SetExpr::AppendOrCreate(AttributeValue::L(vec![n("1")]))),
            ),
            ("first".into(), set(SetExpr::IfNotExists(n("1")))),
            ("n".into(), add(n("5"))),
            (
                "tags".into(),
                add(AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ),
        ],
        ..ItemUpdate::default()
    };
    u.try_apply(&mut item).unwrap();
    u.try_apply(&mut item).unwrap();
    assert_eq!(item["n"], n("10"));
    assert_eq!(
        item["tags"],
        AttributeValue::Ss(vec!["a".into(), "b".into()])
    );
    assert_eq!(item["list"], AttributeValue::L(vec![n("1"), n("1")]));
    assert_eq!(item["first"], n("1"));
    let one = |name: &str, op| ItemUpdate {
        ops: vec![(name.to_owned(), op)],
        ..ItemUpdate::default()
    };
    let strict = one("absent", set(SetExpr::Append(AttributeValue::L(vec![]))));
    let before = item.clone();
    assert!(strict.try_apply(&mut item).is_err());
    assert_eq!(item, before, "a refused update changes nothing");
    assert!(one("tags", add(n("1"))).try_apply(&mut item).is_err());
    item.insert("text".into(), AttributeValue::S("t".into()));
    let not_a_list = one(
        "text",
        set(SetExpr::Append(AttributeValue::L(vec![n("1")]))),
    );
    assert!(not_a_list.try_apply(&mut item).is_err());
    let delete = one(
        "tags",
        UpdateOp::Delete(AttributeValue::Ss(vec!["a".into(), "b".into()])),
    );
    delete.try_apply(&mut item).unwrap();
    assert!(!item.contains_key("tags"), "an emptied set is removed");
    let twice = ItemUpdate {
        set: vec![("n".into(), n("1"))],
        ops: vec![("n".into(), add(n("1")))],
        ..ItemUpdate::default()
    };
    assert!(twice.validate().is_err());
    let mut p = Placeholders::default();
    assert_eq!(
        u.render(&mut p),
        "SET #n0 = list_append(if_not_exists(#n0, :v0), :v1), #n1 = if_not_exists(#n1, :v2) ADD #n2 :v3, #n3 :v4"
    );
}

#[test]
fn evaluates_new_conditions_like_dynamodb() {
    let mut i = Item::new();
    i.insert("s".into(), AttributeValue::S("héllo".into()));
    i.insert(
        "l".into(),
        AttributeValue::L(vec![AttributeValue::S("a".into()), n("2")]),
    );
    i.insert(
        "ns".into(),
        AttributeValue::Ns(vec!["1.0".into(), "3".into()]),
    );
    i.insert("n".into(), n("7"));
    let i = Some(&i);
    assert!(Condition::contains("l", "a").evaluate(i));
    assert!(Condition::contains("l", 2).evaluate(i));
    assert!(!Condition::contains("l", "b").evaluate(i));
    assert!(Condition::contains("ns", 1).evaluate(i));
    assert!(Condition::contains("s", "ll").evaluate(i));
    assert!(Condition::is_in("n", [1, 7]).evaluate(i));
    assert!(!Condition::is_in("n", [1, 8]).evaluate(i));
    assert!(Condition::size("s").eq(6).evaluate(i), "UTF-8 bytes");
    assert!(Condition::size("l").eq(2).evaluate(i));
    assert!(!Condition::size("n").ge(0).evaluate(i));
    assert!(!Condition::size("missing").ge(0).evaluate(i));
    assert!(Condition::attribute_type("ns", "NS").evaluate(i));
    assert!(!Condition::attribute_type("ns", "SS").evaluate(i));
    assert!(Condition::attribute_type("ns", "X").check().is_err());
    assert!(Condition::is_in("n", Vec::<i32>::new()).check().is_err());
    assert!(Condition::is_in("n", 0..101).check().is_err());
    let mut p = Placeholders::default();
    let c = Condition::is_in("n", [1, 2])
        .and(Condition::size("s").gt(3))
        .and(Condition::attribute_type("s", "S"));
    assert_eq!(
        c.render(&mut p),
        "(#n0 IN (:v0, :v1)) AND (size(#n1) > :v2) AND (attribute_type(#n1, :v3))"
    );
}
