-- syn-flood.lua: a TCP SYN load on one rvsd VIP from a range of client addresses and ports.
-- For Pktgen-DPDK 23.06.1 built with Lua; read README.md in this directory first (build flags,
-- the small range TCP flag fix 23.06.1 needs, the rvsd side, the command line).
--   pktgen port 0: towards rvsd's client port, sends the SYNs
--   pktgen port 1: on rvsd's servers port, counts the SYNs rvsd forwarded to the real servers
-- rvsd opens a connection only on a lone SYN (no ACK, RST, FIN): pktgen's default TCP flag is
-- ACK, so the script clears every flag and sets SYN alone.

-- Settings ---------------------------------------------------------------------------------
local DUT_MAC = "56:48:4f:53:54:00" -- rvsd's client port (its log: "port client = ...: mac ...")
local SRC_MAC = "02:00:00:00:01:01" -- pktgen port 0 (mac= of its net_virtio_user vdev)
local VIP, VIP_PORT = "198.51.100.100", 80
local SRC_IP_MIN, SRC_IP_MAX = "198.51.100.10", "198.51.100.89" -- 80 clients
local SRC_PORT_MIN, SRC_PORT_MAX = 1025, 65000 -- keep the max below 65535
local SIZE = 64 -- frame bytes, FCS included
local RATE = 10 -- percent of port 0's link speed (speed=10000: 10% = 1.49 Mpps at 64 bytes)
local SECONDS = 10
local RESULTS = "/tmp/rvs-pktgen-syn-flood.txt"
local TX = "0" -- port 1 only receives
-----------------------------------------------------------------------------------------------

-- The shared helpers (log, range, tcp_flags, ...) are in rvs-common.lua, next to this script.
local HERE = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./" -- this script's directory
local rvs = dofile(HERE .. "rvs-common.lua")
local log, range = rvs.log, rvs.range
rvs.open_log(RESULTS) -- log() writes each line to stdout and to RESULTS

pktgen.screen("off")
log("%s: SYN flood %s:%d from %s-%s ports %d-%d, %d-byte frames, %s%% for %d s",
    pktgen.info.Pktgen_Version or "pktgen", VIP, VIP_PORT, SRC_IP_MIN, SRC_IP_MAX,
    SRC_PORT_MIN, SRC_PORT_MAX, SIZE, tostring(RATE), SECONDS)

-- Every packet steps the source address and the source port together.
pktgen.set_proto(TX, "tcp")
pktgen.range.ip_proto(TX, "tcp")
range(pktgen.range.dst_mac, TX, DUT_MAC, DUT_MAC, DUT_MAC, "00:00:00:00:00:00")
range(pktgen.range.src_mac, TX, SRC_MAC, SRC_MAC, SRC_MAC, "00:00:00:00:00:00")
range(pktgen.range.dst_ip, TX, VIP, VIP, VIP, "0.0.0.0")
range(pktgen.range.src_ip, TX, SRC_IP_MIN, SRC_IP_MIN, SRC_IP_MAX, "0.0.0.1")
range(pktgen.range.dst_port, TX, VIP_PORT, VIP_PORT, VIP_PORT, 0)
range(pktgen.range.src_port, TX, SRC_PORT_MIN, SRC_PORT_MIN, SRC_PORT_MAX, 1)
range(pktgen.range.pkt_size, TX, SIZE, SIZE, SIZE, 0)
rvs.tcp_flags(TX, {"syn"}) -- clear every flag, set SYN alone
pktgen.set(TX, "rate", RATE)
pktgen.set(TX, "count", 0) -- 0: until stopped
pktgen.set_range(TX, "on")

pktgen.delay(1000) -- links settle (virtio-user <-> vhost)
pktgen.clr()
pktgen.start(TX)
rvs.log_rates(SECONDS) -- one line a second: port 0 tx pps, port 1 rx pps
pktgen.stop(TX)
pktgen.delay(1000) -- the last packets leave rvsd

-- Totals: one line per port, then the summary.
local st = rvs.totals()
local sent, got = st[0].opackets, st[1].ipackets
log("offered %d SYNs (%.0f pps); rvsd forwarded %d to the real servers (%.1f%%)", sent,
    sent / SECONDS, got, sent > 0 and 100 * got / sent or 0)
rvs.check_frame_size(st, SIZE) -- warns unless about SIZE - 4 bytes a frame (DPDK: no FCS)
if sent > 0 and got == 0 then
    log("WARNING: nothing forwarded; if rvsd counts no_connection drops, the SYNs still"
        .. " carry ACK (README.md: the range TCP flag fix)")
end
log("rvsd side: connections_created grows by the distinct tuples pktgen sent (at most its range"
    .. " pool, README.md); SIGUSR1 logs its counters, or read its stats_file")
rvs.close_log()

pktgen.quit()
