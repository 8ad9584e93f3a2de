-- wrk script for bench_serve.py: POST the JSON body read from the file named by BODY_FILE.
--   BODY_FILE=body.json wrk -t1 -c16 -d10s --latency -s benchmarks/serve/post.lua http://127.0.0.1:8000/invocations
local path = os.getenv("BODY_FILE")
if path == nil or path == "" then
  error("set BODY_FILE to the path of the JSON request body")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
