-- wrk script shared by every run of bench/run (and the scale checks).
--
-- Environment:
--   BODY        the JSON-RPC request body (POST)
--   TOKEN_FILE  a file of bearer tokens, one per line
--   UNIQUE=1    send the next line of TOKEN_FILE with every request (a token never sent
--               before, so the server must verify it); otherwise the first line, always.
-- When UNIQUE runs out of tokens it starts over and prints WRAPPED on stderr: bench/run flags
-- such a run, because from then on tokens may be cache hits.

local token_file = assert(os.getenv("TOKEN_FILE"), "TOKEN_FILE")
wrk.method = "POST"
wrk.body = assert(os.getenv("BODY"), "BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"

if os.getenv("UNIQUE") == "1" then
  local f = assert(io.open(token_file, "r"))
  local wrapped = false
  function request()
    local t = f:read("*l")
    if not t then
      f:seek("set", 0)
      t = f:read("*l")
      if not wrapped then
        io.stderr:write("WRAPPED\n")
        wrapped = true
      end
    end
    wrk.headers["Authorization"] = "Bearer " .. t
    return wrk.format()
  end
else
  local f = assert(io.open(token_file, "r"))
  wrk.headers["Authorization"] = "Bearer " .. f:read("*l")
  f:close()
end
