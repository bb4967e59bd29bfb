-- rvs-common.lua: helpers shared by the Pktgen-DPDK scripts in this directory (syn-flood.lua,
-- established-udp.lua, established-tcp.lua). Not a script to run with -f: each script loads it
-- with dofile() from the script's own directory, so keep it next to them. It returns a table of
-- functions. They call pktgen's Lua library (the global `pktgen`), and those that print go
-- through log(), so open_log() comes first.

local M = {}

-- Greatest common divisor: the scripts check that ADDRS and PORTS have no common factor.
local function gcd(a, b)
    while b ~= 0 do a, b = b, a % b end
    return a
end
M.gcd = gcd

-- The IPv4 address n after ip: ip_add("198.51.100.10", 7) == "198.51.100.17".
local function ip_add(ip, n)
    local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    local x = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
    return string.format("%d.%d.%d.%d", x // 16777216 % 256, x // 65536 % 256, x // 256 % 256,
        x % 256)
end
M.ip_add = ip_add

-- The results file. open_log(path) creates it; log(fmt, ...) formats one line and writes it to
-- stdout and to the file, flushing both; close_log() closes the file.
local out
local function open_log(path)
    out = assert(io.open(path, "w"))
end
local function log(fmt, ...)
    local line = string.format(fmt, ...)
    io.write(line, "\n")
    io.flush()
    out:write(line, "\n")
    out:flush()
end
local function close_log()
    out:close()
end
M.open_log, M.log, M.close_log = open_log, log, close_log

-- start, min, max, inc of one range field: range(pktgen.range.src_ip, port, start, min, max, inc).
local function range(set, port, start, min, max, inc)
    set(port, "start", start)
    set(port, "min", min)
    set(port, "max", max)
    set(port, "inc", inc)
end
M.range = range

-- The range TCP flags of a port: all cleared, then each of flags set ({"syn"}, {"ack", "psh"}).
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
M.tcp_flags = tcp_flags

-- Wait (at most ms) for a port with a packet count to finish sending.
local function wait_done(port, ms)
    for _ = 1, ms // 100 do
        if pktgen.isSending(port)[tonumber(port)] == "n" then return true end
        pktgen.delay(100)
    end
    return false
end
M.wait_done = wait_done

-- While port 0 sends: one line a second for `seconds` s, port 0 tx pps and port 1 rx pps.
local function log_rates(seconds)
    for s = 1, seconds do
        pktgen.delay(1000)
        local r = pktgen.portStats("all", "rate")
        log("%3d s  port 0 tx %d pps  port 1 rx %d pps", s, r[0].pkts_tx, r[1].pkts_rx)
    end
end
M.log_rates = log_rates

-- The counters of ports 0 and 1, one line each: "port N: ...", or "<label> port N: ..." when
-- label is given. Returns pktgen.portStats("all", "port") ([0] and [1]) for the summary.
local function totals(label)
    local st = pktgen.portStats("all", "port")
    local pk = pktgen.pktStats("all")
    local prefix = label and label .. " " or ""
    for pid = 0, 1 do
        local p, q = st[pid], pk[pid] or {}
        log("%sport %d: opackets %d obytes %d oerrors %d tx_failed %d | ipackets %d ibytes %d"
            .. " ierrors %d imissed %d rx_nombuf %d", prefix, pid, p.opackets, p.obytes,
            p.oerrors, q.tx_failed or 0, p.ipackets, p.ibytes, p.ierrors, p.imissed or 0,
            p.rx_nombuf or 0)
    end
    return st
end
M.totals = totals

-- Warn if port 0's frames were not `size` bytes. DPDK counts bytes without the FCS: 64-byte
-- frames average 60. st is what totals() returned.
local function check_frame_size(st, size)
    local sent = st[0].opackets
    if sent > 0 and math.abs(st[0].obytes / sent - (size - 4)) > 4 then
        log("WARNING: %.1f bytes per frame, not %d: the range packet size was not applied",
            st[0].obytes / sent, size - 4)
    end
end
M.check_frame_size = check_frame_size

return M
