//! The ownership protocol: the rules, the assumptions they rest on, and why no
//! interleaving of writers, deleters and GC leaves a live item pointing to a
//! missing object, applies a call twice, or undoes a delete.
//!
//! Every step names the function that carries it out. Those functions are
//! pure (`decide`) or machines that call them
//! (`machine`); the engine only carries their requests; the
//! model checker (`vhs-core/src/protocol/model/`, tests `model_*`) runs the
//! same machines against a model of DynamoDB, S3, a clock and a faulty
//! network and checks the properties below in every reachable state.
//!
//! # Objects and their owners
//!
//! An object key is `{table prefix}/pk=…/sk=…/attr=…/[enc=…/]{algorithm}=…` (`md5=`,
//! `sha256=` or `crc64nvme=`: the content's checksum)
//! ([`ObjectKey`](crate::ObjectKey)): every value escaped, so a key names
//! exactly one item and one attribute, its *owner*. Two tables never share a
//! prefix ([`StoreBuilder::build`](crate::StoreBuilder::build)). A value is a
//! *pointer of its item* only if it names the item and the very attribute that
//! holds it (`Target::owned`): any other value is never followed
//! ([`Error::BadPointer`](crate::Error::BadPointer), `Store::check_pointer`),
//! never counted as a reference, never deleted through that item. Keys are
//! content-addressed per item and attribute: identical content shares one
//! object (the second upload gets 412).
//!
//! # What the protocol keeps in each item
//!
//! | attribute | on | holds | changed by |
//! |---|---|---|---|
//! | `vhs:tok` | live items, placeholders | the tokens of the item's last 16 writes, newest first | every commit (`State::history_with`); a placeholder keeps it |
//! | `vhs:ph` | placeholders | `{unix ms} {token}` of the write that made the placeholder | a delete (`decide::blind_delete`), a mark on an absent item, a poison |
//! | `vhs:seq` | live items, placeholders | how many marks, take-overs and poisons were set outside a commit | `ADD 1` by each of them |
//! | `vhs:act` | live items, placeholders | the stamp of the latest such mark or take-over | the same writes |
//! | `vhs:del:{attr}:{id}` | live items, placeholders | a *mark*: `{ms} {token}`; a *reservation*: `{ms} {token} once` | marks, commits that replace pointers, GC's take-over |
//! | `vhs:gone:{attr}:{id}` | live items, placeholders | a *tombstone*: when (unix ms, the deleter's clock) a deletion of the object ended | the write that removes a mark or reservation (`decide::unmark`, `decide::remove_pointers`); commits remove it once dead and keep the 32 newest, folding older ones into `vhs:gone` (`decide::fold_tombstones`); a Put carries them |
//! | `vhs:gone` | live items, placeholders | the latest tombstone a commit folded away: it stands for every object | commits |
//! | `vhs:gen` | items written by earlier versions | a token their marks changed | nobody now (still pinned by commits) |
//! | `vhs:exp` | live items of a model with `#[vhs(ttl)]` | when the item expires, Unix seconds | every commit, from the model's TTL field |
//! | `vhs:ttl` | live items holding `vhs:exp` | DynamoDB's TTL attribute: when its reaper may remove the item | every commit (`item::reap_at`); a placeholder holds neither |
//!
//! A *placeholder* is an item holding `vhs:ph`: reads, queries, scans and
//! creates treat it as absent. Its pointers, while there, are reservations
//! of the write that made it. The table's protocol settings (`R`, `S`) are
//! the object `{table prefix}/vhs-protocol.json`, recorded once
//! (`agreed::load_or_record`).
//!
//! # Assumptions
//!
//! | | assumption | what breaks if it is false | how vhs detects it |
//! |---|---|---|---|
//! | A1 | DynamoDB applies each conditional write (and each TransactWriteItems, all or nothing) atomically, and a consistent read sees every write answered before it | everything | nothing: it is the service's contract (moto 5.2.5 breaks it; the test harness serializes it) |
//! | A2 | S3 `PutObject` with `If-None-Match: *` creates the object only if it is absent; a delete of one key is atomic; reads after writes are consistent | step 2's proofs | nothing: the service's contract (`vhs-core` never relies on conditional deletes, which Ceph RGW ignores) |
//! | A3 | every request lands within `R/4` of being sent, or never (`R` the retention, 1 hour by default) | a reservation or mark judged dead could still be deleted by a late DeleteObjects (step 8); a create could land on an item whose placeholder was removed | nothing directly; vhs sends its own requests inside their windows (`Mine::may_send`, the upload window) and leaves objects to GC when a window passed (warned, [`Cleanup::leftover`](crate::Cleanup)) |
//! | A4 | any two hosts' clocks differ by at most `S` (2 minutes by default, below `R/2`) | a stamp judged dead too early (a take-over of a live reservation) | a stamp more than `S` in the future is never judged dead (`Stamp::is_from_future`); [`Settings::check`](crate::protocol::Settings::check) refuses `S >= R/2` |
//! | A5 | every process uses the table's recorded `R` and `S` | the windows of one process and the deadlines of another disagree | they are recorded once, with `If-None-Match`, and read by every process ([`Store::protocol_settings`](crate::Store::protocol_settings)) |
//! | A6 | fewer than 16 writes of one item land between a send of a write and its last possible landing | a late copy of a write can be misjudged: reported not applied when it was, or (a delete's) applied to a newer item | nothing; at the default `R` a copy lands within 15 minutes, and SDK retries within seconds |
//! | A7 | no writer outside vhs writes the table's items or objects while GC runs | GC can delete what such a writer (which ignores marks) just pointed to | GC refuses to delete when it finds items holding pointers without `vhs:tok` ([`GcOptions::foreign_writers_stopped`](crate::maintenance::GcOptions)); `vhs gc --foreign-writers-stopped` |
//!
//! # The steps
//!
//! 1. **Upload first.** A writer uploads with `If-None-Match: *`
//!    (`Op::Put`). An update (`UploadOrder::WhileReading`) reads the item in
//!    the same batch, its uploads running beside the read: one round trip for
//!    both. An object it *creates* then exists after the read unless a
//!    deletion of it ended in between, and every such deletion leaves its
//!    mark or its *tombstone* in the state read: the write that removes a
//!    mark after its DeleteObjects records when (`vhs:gone:{attr}:{id}`).
//!    So a created object counts as existing after the read only if the read
//!    shows no tombstone of it from `S` before the uploads began or later
//!    (`State::deleted_since`; else HeadObject proves it, step 2). It never
//!    counts as created *after* the read. `put_s3` and a transaction still
//!    hold their uploads' last byte until the read answered
//!    (`Op::Put { after_reads }`, `engine::execute`): what they create comes
//!    into existence after the read. A 412 proves nothing about the order.
//! 2. **Commit against what was read.** `decide::commit` turns the caller's
//!    plan into one conditional write requiring the state it was decided on
//!    (`State::unchanged`: absent; the same placeholder by `vhs:ph`,
//!    `vhs:seq`, its marks and its pointers; the same live item by `vhs:tok`
//!    and `vhs:seq`) and, for each object it points to (`State::hold`):
//!    - no mark (`attribute_not_exists`); unless
//!    - a *reservation* (a `once` mark, or a pointer of the placeholder): the
//!      writer must have created the object after reading it (`Need::Cleared`,
//!      an upload that answers `Created`); the commit ends the reservation;
//!    - a mark or reservation whose stamp is *dead* (`R + S` old): the writer
//!      must know the object exists after its read; the commit ends it;
//!    - a live mark: the writer waits (`Decision::Wait`, until the mark is
//!      removed or dead).
//!
//!    Before a commit decided on a live item or a placeholder, every object it
//!    points to must be known to exist after that read (`Need::Exists`:
//!    referenced by the live item read, created after it, or found by a
//!    HeadObject after it, else uploaded again). A commit that stops
//!    referencing objects reserves them in the same write (`decide::commit`,
//!    the `reserves`). A commit appends its token to `vhs:tok`. `Commit` sends
//!    it, and decides again on the item a failed condition returns.
//! 3. **Mark before deleting.** Every other deletion (what a failed write
//!    created, GC's orphans, what a step-by-step hook retires) first marks its
//!    objects with one conditional write on the owner item (`decide::mark`,
//!    `Retire`): the object's own attribute must not point to it, nobody may
//!    have marked it, `vhs:seq` is increased. On an absent item the write
//!    makes a placeholder.
//! 4. **Delete once, then unmark.** The holder of a mark or reservation sends
//!    exactly one DeleteObjects (`Op::Delete`, `Attempts::Once`: no SDK
//!    retry), and only within `R/4` of the stamp (`Mine::may_send`, counted
//!    from the stamp by both of its clocks; else it sends nothing and ends the
//!    mark, leaving the object to GC). Then it removes the mark, on condition
//!    that it is still its own (`decide::unmark`; a delete's placeholder
//!    pointers: `decide::remove_pointers`, on condition that `vhs:ph` is still
//!    its stamp). A DeleteObjects whose answer is lost may still land: its
//!    marks stay (until dead); for a reservation, a HeadObject that finds the
//!    object gone proves the one attempt landed (`Release`).
//! 5. **Nothing after a commit is needed for safety.** A caller that dies
//!    right after it leaves pointers that resolve; its reservations die and are
//!    ended by the next writer of the same content or taken over by GC.
//! 6. **Deleting an item** turns it into a placeholder in one write that
//!    keeps its pointers as reservations under `vhs:ph` (`decide::blind_delete`,
//!    `Delete`). It does not read first: its condition is that the item is live
//!    and that its token is not in `vhs:tok`, which every later item inherits
//!    (a create over the placeholder carries the history, with the delete's
//!    token from `vhs:ph`), so no copy of it can apply to a newer item. Before
//!    a delete reports that it did not apply (not found, a false condition), it
//!    *poisons*: one more write that records `{token}!n` in the history
//!    (`decide::poison`), because a copy of it may still land (one whose answer
//!    was lost, or one the SDK sent again on its own after the answer vhs got).
//!    A create replaces a placeholder only if it is unchanged (step 2) and
//!    carries its marks over, and its pointers as reservations of the same
//!    stamp (`decide::commit`'s Put).
//! 7. **Lost answers.** A write whose answer is lost is sent again unchanged
//!    (`RESENDS` times); it applies, or fails and returns the item, whose
//!    history tells whether an earlier copy applied (`State::wrote`). After
//!    the last resend one consistent read decides: the token is there
//!    (applied); the state it was decided on is gone for good (it can never
//!    apply: decide again); or it may still land
//!    ([`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown)). A
//!    transaction resolves the same way, its token in the items' histories.
//!    The step-by-step caller's own write goes through its own SDK, whose
//!    copies vhs cannot see: a first copy can land after a second was
//!    answered with a failed condition (the model checker found the schedule:
//!    the second fails on a dead placeholder, GC removes it, the first lands).
//!    So the failure hooks settle it first (`Settle`): a mark write without
//!    objects (`vhs:seq` grows, a placeholder's life renews, an absent item
//!    becomes a placeholder), after which no copy can land (L2), and whose
//!    answer shows whether one did (the token in the history;
//!    [`Cleanup::write_landed`](crate::Cleanup::write_landed)). Only then
//!    do they delete what the write created, or, if it landed, what it
//!    replaced.
//! 8. **Time.** A writer commits within `R/2` of the start of its uploads or
//!    uploads again (`Commit`'s refresh); a staged write must land within
//!    `R/2` of its uploads ([`Staged::condition`](crate::Staged::condition)
//!    never holds after that); a DeleteObjects is sent within `R/4` of its
//!    stamp (step 4); a mark or reservation is *dead* `R + S` after its stamp
//!    (`Stamp::is_dead`), and then GC (`decide::take_over`, `TakeOver`) or a
//!    writer (step 2) ends it; an empty placeholder is removed once its newest
//!    stamp (`vhs:ph`, `vhs:act`) is `2R + S` old (`decide::remove_placeholder`).
//! 9. **GC** finds candidates anywhere, on a stale scan and listing
//!    (`maintenance`): the safety of a deletion never depends on how it was
//!    found, only on the mark (step 3), made on the item when it is deleted.
//!    It refuses to delete when items hold pointers without vhs's bookkeeping
//!    (A7).
//!
//! # Why no live item points to a missing object
//!
//! Write `c` for the moment a commit of a pointer to object `K` lands, `r` for
//! the moment the state it was decided on was read, `d` for a moment a
//! DeleteObjects of `K` lands. Suppose every pointer resolved until `c`.
//!
//! **L1 (deletes are marked).** Every DeleteObjects of `K` is sent by the
//! holder of a mark or reservation on `K`'s owner item, set by a conditional
//! write that applied, within `R/4` of its stamp (step 4); it lands within
//! `R/2` of the stamp (A3); the mark is removed only after it landed, or
//! after it was refused for good, or if it was never sent (`Release`,
//! `Retire`). A mark that is dead (`R + S` after its stamp, by any reader's
//! clock, A4) has nothing in flight.
//!
//! **L2 (no ABA).** Every commit's condition pins the state it was decided
//! on. `vhs:tok` and `vhs:ph` hold tokens no other write uses; `vhs:seq` only
//! grows on an item until the item is replaced by a Put (whose new `vhs:tok`
//! differs); so once a condition that pins a read has failed, no later state
//! satisfies it. (A string generation would not do: a late copy of an old mark
//! restores it. The model checker found exactly that.) A condition of *absent*
//! can hold again only after a placeholder is removed, `2R + S` after the last
//! deletion activity on it.
//!
//! **L3 (a mark excludes a reference).** A mark is set only if the object's own
//! attribute does not point to it (step 3), which is the only attribute that
//! can (a pointer is one only in the attribute its key names). A commit never
//! points to an object under a live mark (step 2). A commit that replaces a
//! pointer reserves the object in the same write.
//!
//! **`K` exists at `c`.** Take the commit's decision on the state read at `r`.
//! - If that state is a live item referencing `K`: `K` existed at `r` (the
//!   invariant), and the commit's condition pins that state (L2), in which no
//!   mark on `K` can be set (L3) nor any reservation other than by a commit
//!   that changes `vhs:tok`. So no delete of `K` is in flight or sent between
//!   `r` and `c`, except one from a mark set before `r`, which L3 excludes on
//!   a live referencing item.
//! - If the writer created `K` after `r` (its upload answered `Created` after
//!   the read; step 1) or found it after `r` (HeadObject): `K` existed at some
//!   `e > r`. A delete landing in `(e, c)` needs a mark or reservation on `K`
//!   (L1). Set after `r`: then the state changed after `r` (a mark increases
//!   `vhs:seq`, a commit changes `vhs:tok`, a delete sets `vhs:ph`) and the
//!   commit fails (L2). Set before `r`: then the commit saw it in the state
//!   read, and either waited (a live mark), or it was a reservation the writer
//!   created `K` after reading (the reservation's one attempt had already
//!   landed: `K` existed when the reservation was set, was absent when the
//!   writer created it, and nothing else deletes a reserved object), or it was
//!   dead (nothing in flight, L1), and the commit ends it.
//! - If the writer's upload created `K` beside the read (step 1) and the
//!   state read holds no mark of `K` and no tombstone of it (nor a folded
//!   one) from `t0 - S` or later, `t0` the start of the uploads by the
//!   writer's clock: say `K` was created at `k ≥ t0`. If `k > r`, the
//!   previous case applies. Else a delete landing in `(k, r)` was sent by the
//!   holder of a mark or reservation set before it (L1). Still there at `r`:
//!   the writer saw it (and waited, or had to create `K` after the read, or it
//!   was dead and its delete landed before `t0`: it is `R + S` old at the
//!   decision, sent within `R/4` of its stamp and landing within `R/4`, while
//!   the commit is sent within `R/2` of `t0`). Removed before `r`: its
//!   remover sent the removal after the delete was answered, so after `k`, and
//!   wrote a tombstone of its own clock, at least `t0 - S` (A4). A tombstone
//!   stays until a commit removes it `R + S` after it (by the commit's clock),
//!   that is at least `R` after it was written, while the read landed within
//!   `R/4` of `t0` (A3): the writer saw it. A fold keeps the latest in
//!   `vhs:gone`, and a Put carries them (a removal of a mark it pins could
//!   renew one: the Put's condition fails then). So `K` existed after `r`:
//!   the second case. Undo it (`Fix::Tombstones`) and the checker finds the
//!   schedule: an update to `A1` uploads, a release of `A1` marks, deletes and
//!   unmarks, then the update's read lands and it commits.
//! - If the state read was *absent* (a create that did not read): every
//!   deletion of `K` happens on the item, which then holds a mark or a
//!   placeholder at least until `2R + S` after the stamp of the mark, by which
//!   time any commit whose uploads started before the deletion has landed
//!   (step 8: uploads are at most `R/2` old when the commit is sent, and it
//!   lands within `R/4`). So when the condition *absent* holds at `c`, no
//!   deletion of `K` happened since the writer's uploads.
//!
//! **Presigned uploads.** A client puts `K` there itself, at a time nobody
//! knows, so its age bounds nothing and the last case never applies: the
//! commit (`UploadOrder::Uploaded`, `Store::create_large_from_upload`)
//! reads the item and proves `K` exists after that read by HeadObject on
//! every state, an absent item included (`Fix::UploadsProvenWhenAbsent`:
//! without it the checker finds a commit of an object never uploaded). That
//! is the second case: `K` existed at `e > r`. A mark set after `r` changes
//! the state (an absent item becomes a placeholder), and the commit, sent
//! within `R/2` of `r` (else it reads and proves again) and landing within
//! `R/4`, lands long before that placeholder can be removed (`2R + S`), so
//! its condition fails (L2). A reservation on `K` in the state read is waited
//! for, never ended by this writer (it cannot create `K` after the
//! reservation's attempt); a `K` found missing ends the commit with
//! `Error::UploadMissing`, nothing written. Which content `K` holds is
//! checked before (its size and checksum: HeadObject, or a read), and every
//! read checks it again.
//!
//! **Kept values** ([`Options::keep_replaced_for`](crate::Options::keep_replaced_for)).
//! A writer with a keep time `K` stamps its commit's reservations (and a
//! delete its placeholder, whose pointers are reservations under that stamp;
//! and the step-by-step hook its marks) with ` keep={at + K}`, and sends no
//! DeleteObjects for them (`Fix::KeptNotReleased`). Such a stamp is dead
//! `R + S` after its keep time (`Stamp::dies_at`): only then does GC take it
//! over (step 9) and delete the object. So a kept object exists at least until
//! `at + K + R` by any clock, and the commit landed by `at + R/4`: a reader
//! that follows an old image's pointer within `K` of the write finds it. Its
//! owner never deletes it, so a writer that proves it exists after its read
//! may point to it and end the reservation at once (`Hold::Kept`, as for a
//! dead one): writing a value back never waits for the window. The model
//! checker's property: no DeleteObjects of what a keeping write stopped
//! pointing to lands within `K` of that write.
//!
//! **TTL.** DynamoDB's reaper removes an expired item outright, marks and all,
//! at any time after its TTL attribute: on its own that breaks L1 (a mark that
//! vanishes while its delete is in flight) and L2 (*absent* holding again
//! right after deletion activity), and the checker finds the schedule (GC marks
//! an orphan of the expired item, the reaper removes it, a create of the same
//! content commits on the absent item, GC's delete lands). So the reaper's
//! attribute is vhs's own `vhs:ttl`, and:
//! - no mark, take-over (`decide::mark`, `decide::take_over`) or update
//!   (`decide::commit`) applies to a live item past its `vhs:exp` by the
//!   writer's clock (`State::unexpired`; `Fix::NoMarksOnExpired`): every stamp
//!   on an item is at most `vhs:exp + S`;
//! - every commit sets `vhs:ttl` to the later of `vhs:exp + 2R + S` and the
//!   death of every stamp the item holds (a kept one may die later;
//!   `item::reap_at`). So the reaper removes an item only when nothing sent for
//!   its marks can still land and `2R + S` passed since its last deletion
//!   activity, exactly what the removal of a placeholder waits for (step 8);
//! - a placeholder holds neither attribute: the reaper never removes one.
//!
//! After the reaper, the item's objects are orphans, collected by GC as any
//! other (or by the change feed's consumer of the TTL removal, through the
//! same marks on the absent item).
//!
//! **`K` stays while referenced.** After `c`, a mark on `K` requires that `K`'s
//! attribute does not point to it (L3): only a later commit that replaces the
//! pointer makes that possible, and that commit reserves `K` itself. A
//! reservation's one attempt deletes `K` only if `K` is still unreferenced by
//! then: a writer that points to `K` again after the reservation had to create
//! it after the attempt landed, or wait.
//!
//! **Exactly once, no delete undone.** A call's own write carries its token;
//! a copy of it that lands again fails (its condition pins a state that its
//! first landing changed: L2; a blind delete's token is in the history of
//! every later item), and the call reads its outcome from the history (step 7),
//! within A6. A call reports a failure only when no copy of its write can
//! still land (a pinned state is gone, or a delete poisoned), else
//! `OutcomeUnknown`.
//!
//! **Liveness.** When every other caller stops, a writer waits at most until
//! the marks and reservations in its way are dead (`R + S` after their stamps),
//! then ends them itself (step 2); it never waits for GC. The model checker
//! checks this in every state by running each unfinished writer alone.
//!
//! # What the model checker checks
//!
//! One item, two contents of each of two large attributes (four objects), and
//! per scenario up to four actors among: creates, updates, deletes (plain and
//! deferred), one-item transactions (create, update, delete), the
//! step-by-step API (`put_s3`, the caller's own PutItem or UpdateItem with the
//! staged condition, the hooks), commits of presigned uploads (create and
//! update, their objects uploaded before the scenario starts, or never),
//! writers keeping what they replace (`keep_replaced_for`), and GC (typed,
//! for a model that knows one of the two attributes; and untyped), with its
//! take-over and placeholder removal, background bookkeeping that runs late
//! or never, and DynamoDB's TTL reaper removing an expired item. The environment
//! may lose answers (the request landing or not, and later), have the SDK send
//! a request twice (not DeleteObjects), drop requests, crash an actor at any
//! step (its background work included), let time pass by a quarter of the
//! retention or by the retention plus the skew bound, and run clocks one skew
//! bound apart. In every reachable state: every pointer of a live item names
//! an existing object; a call that reported success applied its write exactly
//! once, one that reported failure not at all; no write applied before a
//! delete applies again after it; every unfinished writer, run alone, reports
//! (not `Busy`) within a bounded number of its own steps; nothing a keeping
//! write replaced is deleted before its keep time. Each fix of the
//! review undone (`Fix`) must make the checker find a counterexample
//! (`model_finds_*`). A conformance test replays random walks of the model
//! through the engine on the in-memory backend and compares every answer.
//!
//! Left out of the model: more than one item (transactions over several
//! items, GC chunks of several items), multipart uploads (an object comes into
//! existence at once), per-key DeleteObjects errors, versioned stores (their
//! writes are commits with their own plans), DynamoDB's idempotent client
//! tokens (the model checks a resent transaction's conditions again, as moto
//! does: the protocol relies on neither), history overflow (A6), the fold of
//! tombstones beyond the 32 newest (`decide`'s unit tests), and queries,
//! scans and reads, which decide nothing.
//!
//! # Candidates from a stale snapshot (GC and verify on Athena)
//!
//! GC's Athena engine ([`Engine::Athena`](crate::maintenance::Engine::Athena))
//! finds its candidates in files: the references a scan wrote and a listing
//! taken after it, joined by Athena minutes later. By the time a candidate is
//! marked, a writer may have pointed an item to it (the same content
//! re-put), or the listing may show an object the scan never saw referenced
//! because its item was written after its segment was read. Neither makes the
//! snapshot unsafe: a candidate is deleted only through the retirement steps
//! above, whose mark is one conditional write on the owner item that requires
//! no reference to the object *at that moment* (and no live placeholder);
//! DynamoDB evaluates it against the item as it is, not as the snapshot saw it.
//! If a reference appeared, the mark fails and the object is kept (counted as
//! rescued); once the mark is written, no writer can point to the object until
//! it is removed (a writer that finds a live mark waits, step 2), so the
//! delete that follows cannot strand a pointer. A stale snapshot can only make
//! GC miss an orphan (collected by the next run) or try a candidate in vain:
//! the in-process engine's scan is a non-atomic snapshot too, and the protocol
//! never relied on it being current. Verify likewise reads each dangling
//! pointer's item again and sends a HeadObject before it reports it.
