//! The contract suite: every case in `cases` and `faults` runs once on the
//! in-memory backend (`memory::*`) and once on a local DynamoDB + S3 emulator
//! (`emulator::*`: ministack by default, `VHS_TEST_EMULATOR=moto` for moto,
//! `VHS_TEST_ENDPOINT=url` for a server already running).
//!
//! One test binary, so the emulator starts once per run.

mod athena;
mod bounded;
mod cache;
mod calls;
mod cases;
mod chaos;
mod checksums;
mod classes;
mod emulator;
mod errors;
mod explore;
mod faults;
mod fixture;
mod iam;
mod inputs;
mod inspect;
mod keep;
mod maintenance;
mod models;
mod queries;
mod races;
mod reads;
mod restore;
mod reviewed;
mod round_trips;
mod schedules;
mod shard;
mod streams;
mod timestamps;
mod transact;
mod transactions;
mod transfers;
mod ttl;
mod uploads;
mod versioned;

/// Generates one `#[tokio::test]` per case and backend.
macro_rules! contract {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::fixture::Fixture::new(crate::fixture::Kind::Memory).await).await
                }
            )*
        }
        mod on_emulator {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::fixture::Fixture::new(crate::fixture::Kind::Emulator).await).await
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aws_options_and_no_secrets_in_debug() {
                crate::inputs::aws_options_and_no_secrets_in_debug().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn transact_write_items_with_a_second_item() {
                crate::transact::transact_write_items_with_a_second_item().await
            }
        }
    };
}

contract! {
    keep::replaced_and_deleted_values_stay_for_the_window,
    keep::kept_values_are_collected_once_their_time_ran_out,
    keep::writing_a_kept_value_back_does_not_wait,
    ttl::expired_items_are_absent_to_every_read,
    ttl::writes_treat_expired_items_as_absent,
    ttl::gc_keeps_expired_items_objects_until_they_are_removed,
    ttl::the_reaper_racing_an_extension_leaves_no_dangling_pointer,
    ttl::the_services_reaper_then_gc,
    ttl::a_consumer_collects_what_the_reaper_orphaned,
    streams::one_change_per_create_update_and_delete,
    streams::a_checkpoint_resumes_without_duplicates_or_gaps,
    streams::a_table_without_a_stream_is_refused,
    streams::every_image_loads_within_keep_replaced_for,
    streams::only_the_models_items_on_a_shared_table,
    streams::a_checkpoint_of_another_stream_is_refused,
    checksums::sha256_and_crc64nvme_round_trip,
    checksums::sha256_and_crc64nvme_multipart,
    checksums::verify_and_gc_know_every_algorithm,
    checksums::an_object_overwritten_behind_vhs_fails_its_checksum,
    checksums::a_wrong_checksum_header_is_refused,
    checksums::object_keys_take_the_attribute_algorithm,
    uploads::a_presigned_put_is_committed_once,
    uploads::a_presigned_post_updates_and_replaces,
    uploads::uploads_of_other_bytes_are_refused,
    uploads::forged_and_misdirected_tickets_are_refused,
    uploads::an_unused_upload_is_collected_after_its_deadline,
    uploads::a_commit_before_the_upload_is_refused,
    uploads::an_md5_attribute_takes_presigned_uploads,
    uploads::presigned_uploads_carry_class_and_tags,
    classes::storage_class_and_tags_are_written,
    classes::multipart_uploads_carry_class_and_tags,
    classes::invalid_tags_are_refused_before_anything_is_written,
    classes::stats_count_bytes_per_storage_class,
    classes::provision_adds_a_transition_per_attribute,
    calls::put_large_creates_and_replaces,
    calls::put_large_if_writes_nothing_when_false,
    calls::put_large_racing_a_delete,
    calls::atomic_update_operations,
    calls::conditions_contains_in_size_and_type,
    calls::count_exists_and_delete_table,
    calls::a_condition_the_service_judges_otherwise_ends_the_call,
    reads::blob_reads_larger_than_a_range_are_spooled_to_disk,
    reads::object_reads_cut_midway_are_read_again,
    reads::listings_serve_the_good_items_of_a_page_with_a_bad_one,
    schedules::transaction_cancellations_without_a_condition,
    timestamps::updated_at_is_set_by_every_write,
    schedules::cached_read_racing_a_write_is_not_served,
    cache::cache_serves_items_and_bodies_until_their_ttl,
    cache::cache_is_invalidated_by_every_write,
    cache::cache_serves_query_pages_until_their_ttl,
    schedules::transaction_after_a_concurrent_identical_write,
    schedules::transaction_losing_a_version_race_to_identical_content,
    transactions::transaction_commits_items_of_several_tables,
    transactions::transaction_canceled_by_one_action_writes_nothing,
    transactions::transaction_lost_responses_apply_once,
    transactions::transaction_input_errors_send_nothing,
    queries::query_range_conditions_and_order,
    queries::query_pages_past_one_megabyte,
    queries::global_index_date_ranges_across_offsets,
    queries::local_index_date_ranges,
    queries::filters_projections_and_placeholders,
    queries::query_input_errors_send_nothing,
    round_trips::round_trip_create,
    round_trips::round_trip_get,
    round_trips::round_trip_update,
    round_trips::round_trip_update_deferred,
    round_trips::round_trip_delete,
    round_trips::round_trip_reuse_without_waiting,
    round_trips::concurrency_is_bounded_store_wide,
    round_trips::round_trip_batch,
    round_trips::round_trip_inline,
    transfers::multipart_round_trip_from_bytes_file_and_reader,
    transfers::ranged_reads,
    transfers::empty_and_small_values_stream,
    transfers::failed_multipart_uploads_are_aborted,
    transfers::changed_file_is_refused,
    transfers::tampered_download_is_an_integrity_error,
    transfers::gc_aborts_stale_uploads,
    transfers::presigned_urls,
    transfers::compressed_values_round_trip,
    cases::round_trip_with_range_key,
    cases::round_trip_without_range_key,
    cases::none_means_no_object_and_no_attribute,
    cases::empty_values_are_objects,
    cases::get_missing_is_not_found,
    cases::get_stored_and_load_chosen_attributes,
    cases::batch_get_large_reads_many_items_in_order,
    cases::batch_get_large_asks_again_for_unprocessed_keys,
    cases::batch_create_and_delete_report_each_item,
    cases::batch_writes_check_every_input_before_sending,
    cases::inline_values_live_in_the_item,
    cases::staged_inline_values_merge_into_your_write,
    cases::flush_returns_after_a_panicking_background_job,
    cases::create_over_existing_item_fails_and_cleans_up,
    cases::create_over_existing_item_without_cleanup_keeps_objects,
    cases::create_identical_twice_deletes_nothing,
    cases::create_recreating_lost_object_keeps_it,
    cases::update_one_of_two_large_attributes,
    cases::update_large_attribute_to_none,
    cases::update_with_identical_content_keeps_the_object,
    cases::update_recreating_lost_object_keeps_it,
    cases::update_missing_item_is_not_found_and_cleans_up,
    cases::update_with_false_condition_fails_and_cleans_up,
    cases::update_ordinary_attributes_only,
    cases::update_without_changes,
    cases::update_rejects_key_and_large_names_as_ordinary,
    cases::update_without_post_success_cleanup_keeps_old_objects,
    cases::delete_removes_item_and_objects,
    cases::delete_skips_none_attributes,
    cases::hostile_keys_round_trip_without_collisions,
    cases::prefix_with_slashes_is_normalized,
    cases::over_long_key_is_rejected_before_writing,
    cases::oversized_item_is_rejected_before_writing,
    cases::empty_key_is_rejected_before_writing,
    cases::tampered_object_is_an_integrity_error,
    cases::lost_object_is_a_dangling_pointer,
    cases::foreign_pointers_are_refused_never_followed,
    cases::step_by_step_put_item_flow,
    cases::step_by_step_update_flow,
    cases::json_wrapper_and_bytes_update,
    faults::create_fails_at_second_upload,
    faults::create_fails_at_put_item,
    faults::create_put_item_response_lost,
    faults::create_cleanup_fails,
    faults::update_fails_at_second_upload,
    faults::update_fails_at_update_item,
    faults::update_item_response_lost,
    faults::update_post_success_cleanup_fails,
    faults::reserved_delete_fails_and_stays_reserved_for_gc,
    faults::delete_fails_at_delete_item,
    faults::delete_object_cleanup_fails,
    faults::delete_per_key_errors_are_reported,
    faults::call_sequences,
    faults::every_failure_point,
    inputs::bad_inputs_are_rejected_before_writing,
    inputs::hostile_key_characters_round_trip,
    inputs::missing_table_and_bucket_are_backend_errors,
    errors::missing_table_is_table_not_found_on_every_call,
    errors::missing_bucket_names_the_bucket,
    errors::bucket_names_s3_refuses_are_refused_by_build,
    maintenance::gc_respects_grace_dry_run_and_foreign_keys,
    maintenance::verify_reports_every_broken_pointer,
    maintenance::gc_is_safe_while_writers_run,
    shard::sharded_runs_add_up_to_one_run,
    shard::bad_shards_and_checkpoints_are_refused,
    shard::a_sharded_run_resumes_from_its_checkpoint,
    shard::sharded_gc_is_safe_while_writers_run,
    inspect::untyped_table_reads_like_the_model,
    inspect::untyped_gc_and_verify_match_the_typed_ones,
    versioned::update_retry_downloads_only_changed_values,
    versioned::versioned_stores_keep_small_values_inline,
    versioned::single_version_put_rules,
    versioned::single_version_put_latest_and_start,
    versioned::single_version_update_sends_only_changed_values,
    versioned::multi_version_put_get_versions,
    versioned::multi_version_pagination,
    versioned::multi_version_delete_and_prune,
    versioned::dangling_latest_is_not_no_version,
    versioned::clashing_large_attribute_is_rejected,
    versioned::racing_identical_creates,
    versioned::stale_writer_gets_version_conflict,
    versioned::concurrent_updates_lose_nothing,
    versioned::concurrent_put_latest_writes_each_version_once,
    races::tables_never_share_objects,
    races::shared_prefixes_are_refused_at_build,
    races::race_update_new_and_back_to_old,
    races::race_gc_with_reput_of_orphan,
    inspect::race_untyped_gc_with_reput_of_orphan,
    races::race_delete_and_identical_recreate,
    races::race_twin_creates_one_failing,
    races::lost_responses_apply_versioned_updates_once,
    races::every_interleaving_keeps_every_pointer,
    races::versioned_every_failure_point,
    schedules::early_412_update_races_the_deletion_of_its_object,
    schedules::early_412_step_by_step_commit_then_writer_dies,
    schedules::early_412_create_races_its_twins_cleanup,
    schedules::gc_between_an_update_s_upload_and_its_commit,
    schedules::gc_between_an_update_s_upload_and_its_read,
    schedules::tombstones_fold_past_32,
    reviewed::reviewed_1_a_late_pointer_removal_keeps_a_newer_delete_s_reservation,
    reviewed::reviewed_2_typed_gc_rechecks_the_object_s_own_attribute,
    reviewed::reviewed_2_untyped_gc_marks_each_orphan_by_its_own_attribute,
    reviewed::reviewed_3_a_staged_write_cannot_land_after_its_deadline,
    reviewed::reviewed_4_a_create_resent_after_a_delete_does_not_undo_it,
    reviewed::reviewed_5_a_dead_deleter_delays_an_identical_create_only_until_its_deadline,
    reviewed::reviewed_6_a_pointer_to_another_item_s_object_is_a_bad_pointer,
    reviewed::reviewed_7_a_resent_delete_does_not_delete_a_newer_item,
    reviewed::reviewed_8_a_mark_stays_while_its_delete_may_still_land,
    reviewed::reviewed_9_a_slow_answer_does_not_stretch_the_send_window,
    reviewed::upgrade_items_of_the_previous_version_keep_working,
    restore::restore_check_brings_back_every_deleted_object,
    restore::restore_check_on_an_unversioned_bucket_restores_nothing,
    restore::restore_check_refuses_versions_with_other_bytes,
    restore::bucket_versions_are_listed_and_a_removed_marker_restores,
    restore::backup_consistent_refuses_a_short_noncurrent_expiry,
}
