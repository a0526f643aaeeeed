//! DynamoDB item calls: reads, conditional writes, queries, scans, transactions.

use super::*;

#[async_trait]
impl ItemCalls for AwsBackend {
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error(Op::GetItem.name(), table, e))?;
        Ok(out.item)
    }

    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        let request = built(
            "dynamodb",
            Op::BatchGetItem.name(),
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys.to_vec()))
                .consistent_read(consistent)
                .build(),
        )?;
        let out = self
            .dynamodb
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| self.ddb_error(Op::BatchGetItem.name(), table, e))?;
        Ok(BatchPage {
            items: out
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default(),
            unprocessed: out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default(),
        })
    }

    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        let mut p = Placeholders::default();
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(
                out.attributes.filter(|a| !a.is_empty()),
            )),
            Err(e) => match e.as_service_error() {
                Some(ddb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    c,
                )) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error(Op::PutItem.name(), table, e)),
            },
        }
    }

    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        let mut p = Placeholders::default();
        let update_expr = (!update.is_empty()).then(|| update.render(&mut p));
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .set_update_expression(update_expr)
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(out.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                        c,
                    ),
                ) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error(Op::UpdateItem.name(), table, e)),
            },
        }
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        let mut p = Placeholders::default();
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(
                out.attributes.filter(|a| !a.is_empty()),
            )),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(
                        c,
                    ),
                ) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error(Op::DeleteItem.name(), table, e)),
            },
        }
    }

    async fn query(&self, request: &Query) -> Result<QueryPage> {
        let mut p = Placeholders::default();
        let name = p.name(&request.hash_key.0);
        let value = p.value(request.hash_key.1.clone());
        let mut key_condition = format!("{name} = {value}");
        if let Some(range) = &request.range {
            key_condition = format!("{key_condition} AND {}", range.render(&mut p));
        }
        let filter = condition_parts(request.filter.as_ref(), &mut p);
        let projection = projection_expression(request.projection.as_ref(), &mut p);
        let out = self
            .dynamodb
            .query()
            .table_name(&request.table)
            .set_index_name(request.index.clone())
            .key_condition_expression(key_condition)
            .set_filter_expression(filter)
            .set_projection_expression(projection)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .scan_index_forward(!request.descending)
            .set_limit(request.limit.map(|l| l.min(i32::MAX as usize) as i32))
            .set_exclusive_start_key(request.start.clone())
            .consistent_read(request.consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error(Op::Query.name(), &request.table, e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        let (segment, total) = match request.segment {
            Some((s, t)) => (Some(s as i32), Some(t as i32)),
            None => (None, None),
        };
        let mut p = Placeholders::default();
        let filter = condition_parts(request.filter.as_ref(), &mut p);
        let projection = projection_expression(request.projection.as_ref(), &mut p);
        let out = self
            .dynamodb
            .scan()
            .table_name(&request.table)
            .set_segment(segment)
            .set_total_segments(total)
            .set_filter_expression(filter)
            .set_projection_expression(projection)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .set_limit(request.limit.map(|l| l.min(i32::MAX as usize) as i32))
            .set_exclusive_start_key(request.start.clone())
            .consistent_read(request.consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error(Op::Scan.name(), &request.table, e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        const OP: &str = Op::TransactWriteItems.name();
        // The part every kind of action has: its condition, the expression
        // placeholders, the stored item on a failed condition; then `build()`.
        macro_rules! conditional {
            ($builder:expr, $expr:expr, $p:expr) => {
                built(
                    "dynamodb",
                    OP,
                    $builder
                        .set_condition_expression($expr)
                        .set_expression_attribute_names(non_empty($p.names))
                        .set_expression_attribute_values(non_empty($p.values))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build(),
                )?
            };
        }
        let mut items = Vec::with_capacity(actions.len());
        for action in actions {
            let mut p = Placeholders::default();
            let item = match action {
                TransactWrite::Put {
                    table,
                    item,
                    condition,
                } => {
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let put = ddb::types::Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()));
                    TransactWriteItem::builder()
                        .put(conditional!(put, expr, p))
                        .build()
                }
                TransactWrite::Update {
                    table,
                    key,
                    update,
                    condition,
                } => {
                    let update_expr = update.render(&mut p);
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let update = ddb::types::Update::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()))
                        .update_expression(update_expr);
                    TransactWriteItem::builder()
                        .update(conditional!(update, expr, p))
                        .build()
                }
                TransactWrite::Delete {
                    table,
                    key,
                    condition,
                } => {
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let delete = ddb::types::Delete::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()));
                    TransactWriteItem::builder()
                        .delete(conditional!(delete, expr, p))
                        .build()
                }
                TransactWrite::Check {
                    table,
                    key,
                    condition,
                } => {
                    let expr = Some(condition.render(&mut p));
                    let check = ddb::types::ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()));
                    TransactWriteItem::builder()
                        .condition_check(conditional!(check, expr, p))
                        .build()
                }
            };
            items.push(item);
        }
        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Transacted::Committed),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c),
                ) if !c.cancellation_reasons().is_empty() => Ok(Transacted::Canceled(
                    c.cancellation_reasons()
                        .iter()
                        .map(|r| CancelReason {
                            code: r.code().filter(|c| *c != "None").map(str::to_owned),
                            message: r.message().map(str::to_owned),
                            item: r.item().filter(|i| !i.is_empty()).cloned(),
                        })
                        .collect(),
                )),
                _ => match self.ddb_error(OP, "", e) {
                    Error::TableNotFound { .. } => {
                        let mut tables: Vec<&str> = actions.iter().map(|a| a.table()).collect();
                        tables.sort_unstable();
                        tables.dedup();
                        Err(Error::TableNotFound {
                            table: self.missing_table(&tables).await,
                        })
                    }
                    e => Err(e),
                },
            },
        }
    }
}
