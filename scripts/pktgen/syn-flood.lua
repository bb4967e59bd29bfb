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

local out = assert(io.open(RESULTS, "w"))
local function log(fmt, ...)
    local line = string.format(fmt, ...)
    io.write(line, "\n")
    io.flush()
    out:write(line, "\n")
    out:flush()
end

-- start, min, max, inc of one range field.
local function range(set, port, start, min, max, inc)
    set(port, "start", start)
    set(port, "min", min)
    set(port, "max", max)
    set(port, "inc", inc)
end

-- Pktgen 23.06 has no Lua call for TCP flags: feed its CLI commands through a command file.
local function tcp_flags(port, flags)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(string.format("range %s tcp flag clr all\n", port))
    for _, flag in ipairs(flags) do
        f:write(string.format("range %s tcp flag set %s\n", port, flag))
    end
    f:close()
    pktgen.load(path)
    os.remove(path)
end

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
tcp_flags(TX, {"syn"})
pktgen.set(TX, "rate", RATE)
pktgen.set(TX, "count", 0) -- 0: until stopped
pktgen.set_range(TX, "on")

pktgen.delay(1000) -- links settle (virtio-user <-> vhost)
pktgen.clr()
pktgen.start(TX)
for s = 1, SECONDS do
    pktgen.delay(1000)
    local r = pktgen.portStats("all", "rate")
    log("%3d s  port 0 tx %d pps  port 1 rx %d pps", s, r[0].pkts_tx, r[1].pkts_rx)
end
pktgen.stop(TX)
pktgen.delay(1000) -- the last packets leave rvsd

-- Totals. DPDK counts bytes without the FCS: 64-byte frames average 60.
local st = pktgen.portStats("all", "port")
local pk = pktgen.pktStats("all")
for pid = 0, 1 do
    local p, q = st[pid], pk[pid] or {}
    log("port %d: opackets %d obytes %d oerrors %d tx_failed %d | ipackets %d ibytes %d"
        .. " ierrors %d imissed %d rx_nombuf %d", pid, p.opackets, p.obytes, p.oerrors,
        q.tx_failed or 0, p.ipackets, p.ibytes, p.ierrors, p.imissed or 0, p.rx_nombuf or 0)
end
local sent, got = st[0].opackets, st[1].ipackets
log("offered %d SYNs (%.0f pps); rvsd forwarded %d to the real servers (%.1f%%)", sent,
    sent / SECONDS, got, sent > 0 and 100 * got / sent or 0)
if sent > 0 and math.abs(st[0].obytes / sent - (SIZE - 4)) > 4 then
    log("WARNING: %.1f bytes per frame, not %d: the range packet size was not applied",
        st[0].obytes / sent, SIZE - 4)
end
if sent > 0 and got == 0 then
    log("WARNING: nothing forwarded; if rvsd counts no_connection drops, the SYNs still"
        .. " carry ACK (README.md: the range TCP flag fix)")
end
log("rvsd side: connections_created grows by the distinct tuples pktgen sent (at most its range"
    .. " pool, README.md); SIGUSR1 logs its counters, or read its stats_file")
out:close()

pktgen.quit()
