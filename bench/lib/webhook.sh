# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with bench/run.sh
# The `webhook` scenario of bench/run.sh, which sources this file and provides the helpers
# (sql, sql_now, measured_run, warmup, field, record, log) and settings it uses.
#
# POST /webhooks/stripe (DESIGN §8: ≥ 1,000 distinct signed events/s, each applied exactly
# once): for each connection count, a file of distinct signed `checkout.session.completed`
# events (bench/lib/stripe_events.py, signed right before the run) is sent once by wrk
# (bench/lua/webhook.lua), then the database is checked; then every event the service
# stored is delivered again, concurrently, re-signed as Stripe does for a redelivery, and
# must change nothing.

WEBHOOK_SEQ=0

# The one-time plan the events buy, inserted as POST /admin/plans would.
webhook_plan() {
    local now
    now=$(sql_now)
    sql "INSERT INTO plans (id, name, kind, credits, price, currency, \"interval\", stripe_price_id,
                            active, created_at, updated_at)
         VALUES ('$PLAN_ID', 'Bench pack', 'one_time', $PLAN_CREDITS_CENTS, 1000, 'usd', NULL,
                 '$PLAN_PRICE_ID', TRUE, $now, $now)" >/dev/null
}

# "events applied purchases purchase_cents payments balance_cents" over the whole database.
billing_state() {
    sql "SELECT (SELECT COUNT(*) FROM billing_events),
                (SELECT COUNT(*) FROM billing_events WHERE outcome = 'applied'),
                (SELECT COUNT(*) FROM credit_transactions WHERE transaction_type = 'purchase'),
                (SELECT COALESCE(SUM(amount), 0) FROM credit_transactions WHERE transaction_type = 'purchase'),
                (SELECT COUNT(*) FROM payments),
                (SELECT COALESCE(SUM(balance), 0) FROM credit_balances)" | tr '|' ' '
}

# "unpaired double_grants" for the events of TAG: applied events without exactly their own
# purchase row (same session, same user) plus purchase rows without an applied event; and
# sessions granted more than once (whole ledger).
webhook_pairing() { # webhook_pairing TAG
    local tag=$1 unpaired orphans doubles
    unpaired=$(sql "SELECT COUNT(*) FROM billing_events AS e
        WHERE e.id LIKE 'evt\\_${tag}\\_%' ESCAPE '\\' AND e.outcome = 'applied'
          AND (SELECT COUNT(*) FROM credit_transactions AS t
               WHERE t.transaction_type = 'purchase' AND t.reference_id = 'cs_' || substr(e.id, 5)
                 AND t.user_id = e.user_id AND t.amount = $PLAN_CREDITS_CENTS) <> 1")
    orphans=$(sql "SELECT COUNT(*) FROM credit_transactions AS t
        WHERE t.transaction_type = 'purchase' AND t.reference_id LIKE 'cs\\_${tag}\\_%' ESCAPE '\\'
          AND NOT EXISTS (SELECT 1 FROM billing_events AS e
                          WHERE e.id = 'evt_' || substr(t.reference_id, 4) AND e.outcome = 'applied')")
    doubles=$(sql "SELECT COUNT(*) FROM (SELECT reference_id FROM credit_transactions
        WHERE transaction_type = 'purchase' GROUP BY reference_id HAVING COUNT(*) > 1) AS d")
    echo "$((unpaired + orphans)) $doubles"
}

# outcome_count NAME "applied:3,duplicate:1" -> 3
outcome_count() {
    local kv
    for kv in ${2//,/ }; do [[ ${kv%%:*} == "$1" ]] && { echo "${kv#*:}"; return; }; done
    echo 0
}

# webhook_file TAG SECONDS -> path of a fresh file of distinct signed events (enough for
# SECONDS at WEBHOOK_MAX_RATE events/s).
webhook_file() {
    local tag=$1 count=$(($2 * WEBHOOK_MAX_RATE)) file="$WORK/events-$1.txt"
    ((count >= 1000)) || count=1000
    WEBHOOK_SECRET=$WEBHOOK_SECRET python3 "$BENCH_DIR/lib/stripe_events.py" generate \
        "$file" "$count" "$tag" "$WORK/ids.txt" "$PLAN_ID" || die "generating Stripe events failed"
    echo "$file"
}

# One measured run of distinct events at CONC connections, checked; then their redelivery.
webhook_run() {
    local conc=$1 tag file threads ok=1 why='' s0 s1 s2
    WEBHOOK_SEQ=$((WEBHOOK_SEQ + 1))
    tag="${BACKEND:0:2}c${conc}n$WEBHOOK_SEQ"
    threads=$((conc < WRK_THREADS ? conc : WRK_THREADS))
    file=$(webhook_file "$tag" "$DURATION")
    s0=$(billing_state)
    measured_run webhook "$conc" webhook.lua -- "$file" "$threads"
    sleep 1 # answers lost when wrk stopped: let their transactions end
    s1=$(billing_state)

    local e0 a0 p0 c0 y0 b0 e1 a1 p1 c1 y1 b1 outcomes statuses applied dup other extra errs e
    read -r e0 a0 p0 c0 y0 b0 <<<"$s0"
    read -r e1 a1 p1 c1 y1 b1 <<<"$s1"
    outcomes=$(field outcomes "$LAST_WRK")
    statuses=$(field statuses "$LAST_WRK")
    applied=$(outcome_count applied "$outcomes")
    dup=$(outcome_count duplicate "$outcomes")
    other=$(($(outcome_count ignored "$outcomes") + $(outcome_count unmatched "$outcomes")))
    extra=$(field extra "$LAST_WRK")
    errs=0
    for e in err_connect err_read err_write err_timeout; do errs=$((errs + $(field "$e" "$LAST_WRK"))); done
    local slack=$((conc + errs)) unpaired doubles chain sums
    read -r unpaired doubles <<<"$(webhook_pairing "$tag")"
    read -r chain sums <<<"$(ledger_breaks "1 = 1")"
    local db_applied=$((a1 - a0))
    ((e1 - e0 == db_applied)) || { ok=0; why+="$((e1 - e0 - db_applied))_events_not_applied;"; }
    ((p1 - p0 == db_applied && y1 - y0 == db_applied)) || { ok=0; why+="purchases_$((p1 - p0))_payments_$((y1 - y0))_vs_applied_${db_applied};"; }
    ((c1 - c0 == db_applied * PLAN_CREDITS_CENTS)) || { ok=0; why+="credits_granted_$((c1 - c0));"; }
    ((b1 - b0 == c1 - c0)) || { ok=0; why+="balances_moved_$((b1 - b0))_ledger_$((c1 - c0));"; }
    ((db_applied >= applied && db_applied - applied <= slack)) || { ok=0; why+="stored_${db_applied}_vs_answered_${applied};"; }
    ((dup == 0)) || { ok=0; why+="${dup}_duplicates_of_distinct_events;"; }
    ((other == 0)) || { ok=0; why+="${other}_ignored_or_unmatched;"; }
    (($(field err_status "$LAST_WRK") == 0)) || { ok=0; why+="status_${statuses};"; }
    ((unpaired == 0)) || { ok=0; why+="${unpaired}_events_without_their_one_grant;"; }
    ((doubles == 0)) || { ok=0; why+="${doubles}_sessions_granted_twice;"; }
    ((chain == 0 && sums == 0)) || { ok=0; why+="ledger_${chain}_chain_breaks_${sums}_sums;"; }
    ((applied > 0)) || { ok=0; why+="nothing_applied;"; }
    ((extra == 0)) || log "webhook c=$conc: the $(wc -l <"$file") events ran out ($extra requests after the end): raise WEBHOOK_MAX_RATE; the rate is a lower bound"
    record "$LAST_RUN check_ok=$ok applied=$db_applied answered_ok=$applied in_flight=$((db_applied - applied)) duplicates=$dup events_file=$(wc -l <"$file") exhausted=$((extra > 0 ? 1 : 0)) unpaired=$unpaired double_grants=$doubles chain_breaks=$chain sum_mismatches=$sums granted_cents=$((c1 - c0)) check_why=${why:--}"
    ((ok)) || log "WEBHOOK CHECK FAILED for c=$conc: $why"

    # Redelivery: every event the service stored, signed again, all at once.
    local ids="$WORK/ids-$tag.txt" again="$WORK/events-$tag-again.txt" count dur rps
    sql "SELECT id FROM billing_events WHERE id LIKE 'evt\\_${tag}\\_%' ESCAPE '\\'" >"$ids"
    count=$(WEBHOOK_SECRET=$WEBHOOK_SECRET python3 "$BENCH_DIR/lib/stripe_events.py" resign "$file" "$again" "$ids") \
        || die "re-signing Stripe events failed"
    # Long enough to send them all at the first run's rate, twice over; the threads stop
    # when their share is sent.
    rps=$(field rps "$LAST_WRK")
    dur=$(awk -v n="$count" -v r="$rps" -v d="$DURATION" 'BEGIN { r = (r < 50 ? 50 : r); s = int(2 * n / r) + 2; print (s > 2 * d + 2 ? 2 * d + 2 : s) }')
    RUN_SECONDS=$dur measured_run webhook-redelivery "$conc" webhook.lua -- "$again" "$threads"
    sleep 1
    s2=$(billing_state)
    outcomes=$(field outcomes "$LAST_WRK")
    dup=$(outcome_count duplicate "$outcomes")
    applied=$(outcome_count applied "$outcomes")
    other=$(($(outcome_count ignored "$outcomes") + $(outcome_count unmatched "$outcomes")))
    extra=$(field extra "$LAST_WRK")
    ok=1 why=
    [[ $s2 == "$s1" ]] || { ok=0; why+="state_changed_from_${s1// /_}_to_${s2// /_};"; }
    ((applied == 0 && other == 0)) || { ok=0; why+="${applied}_applied_${other}_other_on_redelivery;"; }
    (($(field err_status "$LAST_WRK") == 0)) || { ok=0; why+="status_$(field statuses "$LAST_WRK");"; }
    # Each thread stops once its share is sent and answered: every event, answered once.
    ((dup == count)) || { ok=0; why+="${dup}_duplicates_of_${count}_redelivered;"; }
    read -r chain sums <<<"$(ledger_breaks "1 = 1")"
    ((chain == 0 && sums == 0)) || { ok=0; why+="ledger_${chain}_chain_breaks_${sums}_sums;"; }
    record "$LAST_RUN check_ok=$ok redelivered=$count answered_duplicate=$dup exhausted=$((extra > 0 ? 1 : 0)) chain_breaks=$chain sum_mismatches=$sums check_why=${why:--}"
    ((ok)) || log "WEBHOOK REDELIVERY CHECK FAILED for c=$conc: $why"
    rm -f "$file" "$again" "$ids"
    sleep 1
}

webhook_runs() {
    local c file
    webhook_plan
    if ((WARMUP > 0)); then
        file=$(webhook_file "${BACKEND:0:2}warm" "$WARMUP")
        warmup 16 webhook.lua -- "$file" "$WRK_THREADS"
        rm -f "$file"
    fi
    for c in $WEBHOOK_CONC; do webhook_run "$c"; done
}
