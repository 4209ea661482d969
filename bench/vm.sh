# bench/vm.sh: sourced by the benches that report CPU per GiB (bench/run and the parts it sources, bench/utp).
#
# Why: this development machine is a Firecracker guest whose kernel has virtio-balloon free page reporting on
# (/sys/module/page_reporting). Every free block of 2 MiB (order 9) is handed back to the host within seconds, and
# the guest's next touch of that memory faults to the host again. That fault shows as the toucher's system time:
# `dd` of 1 GiB into a new file cost 2.9-4.1 s of sys once the memory had been reported, and 0.3 s when it had not
# (2026-12-02, measured three times each way). Every cache write of a stream allocates page-cache pages from that
# pool, so without this the cache write alone was half of a P2P stream's CPU, for streme and rqbit alike. A board
# has no host to hand pages to. So for the duration of a bench the reporting order is set above the buddy
# allocator's largest order (10 on x86_64 and arm64 with 4 KiB pages): no free block qualifies, nothing is
# reported, and freed pages stay the guest's. The old order is put back at exit. Where the file is missing (a real
# board, a machine without the balloon) or not writable (not root), nothing changes and the bench says so.
PAGE_REPORTING_ORDER_FILE=${PAGE_REPORTING_ORDER_FILE:-/sys/module/page_reporting/parameters/page_reporting_order}
PAGE_REPORTING_WAS=
# What the results should say about it; set by hold_page_reporting.
PAGE_REPORTING_NOTE="no free page reporting on this machine"

hold_page_reporting() {
    if [[ ! -e $PAGE_REPORTING_ORDER_FILE ]]; then
        return 0
    fi
    if [[ ! -w $PAGE_REPORTING_ORDER_FILE ]]; then
        PAGE_REPORTING_NOTE="the VM's free page reporting was left on (not root): CPU per GiB includes re-touching reported pages"
        printf 'bench: %s\n' "$PAGE_REPORTING_NOTE" >&2
        return 0
    fi
    PAGE_REPORTING_WAS=$(cat "$PAGE_REPORTING_ORDER_FILE")
    echo 11 >"$PAGE_REPORTING_ORDER_FILE"
    PAGE_REPORTING_NOTE="the VM's free page reporting held off for the run (page_reporting_order $PAGE_REPORTING_WAS -> 11; bench/vm.sh says why)"
}

release_page_reporting() {
    if [[ -n $PAGE_REPORTING_WAS ]]; then
        echo "$PAGE_REPORTING_WAS" >"$PAGE_REPORTING_ORDER_FILE" || true
        PAGE_REPORTING_WAS=
    fi
}
