-- Finishing touches on transcoded REST replies (envoy.filters.http.lua). This is the first HTTP
-- filter, so it sees responses last: after the gRPC-JSON transcoder has turned them into JSON.
-- gRPC clients (content-type application/grpc*) get their replies untouched.
--
-- 1. Status codes. The transcoder answers every successful call with 200. A method whose success
--    status is another one (201 Created, 202 Accepted, 204 No Content: SUCCESS_STATUS and the
--    Create*/Delete* rule in gateway_http/openapi_tables.py) has route metadata
--    {http_status: <code>} (gateway_http/envoy_config/render.py), so the services send nothing
--    extra. A status that depends on the reply (503 for an unhealthy health report) comes from the
--    service as `x-http-code: <status>` initial metadata (ossa_runtime/http.py), which wins over
--    the route's. The header is removed; :status is rewritten only when it is 200, so a failed
--    call keeps its error status (409 must not become 201). A 204 loses content-type,
--    content-length and then its body, so keep-alive works.
--
-- 2. `response_body`. Envoy's transcoder does not support google.api.http `response_body` for
--    non-HttpBody fields, so gateway_http/envoy_config/render.py strips it from the descriptor Envoy
--    loads and tags the method's route with metadata {response_body: "<field>"}; here the
--    successful JSON reply `{"<field>": X, ...}` is replaced by X (a dotted path digs deeper).
--
-- 3. Leftover grpc-* headers are not shown to REST clients.
--
-- 5. Read-your-writes: the reply to every REST write (any verb but GET/HEAD) carries
--    `x-ossa-consistency: <token>` (the request's x-request-id, unique per request). A read that
--    sends it back bypasses the gateway's read cache (gateway_http/envoy_config/cache.py), so the
--    writer never reads data older than its write.

local HTTP_CODE = "x-http-code"
local CONSISTENCY = "x-ossa-consistency"

local function is_grpc(content_type)
  return content_type ~= nil and string.sub(content_type, 1, 16) == "application/grpc"
end

-- The route's `http_status` (a number in the route metadata) as a status string, or nil.
local function status_text(value)
  if type(value) == "number" then
    return string.format("%d", value)
  end
  return type(value) == "string" and value or nil
end

local function drop_grpc_headers(headers)
  local doomed = {}
  for key, _ in pairs(headers) do
    if string.sub(key, 1, 5) == "grpc-" then
      doomed[#doomed + 1] = key
    end
  end
  for _, key in ipairs(doomed) do
    headers:remove(key)
  end
end

-- Minimal JSON scanning: enough to cut one member out of the transcoder's output. -------------

-- Index of the first non-blank character at or after i (nil at the end).
local function skip_blank(s, i)
  return string.find(s, "[^ \t\r\n]", i)
end

-- Index just past the JSON string whose opening quote is at i.
local function skip_string(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if k == nil then
      return nil
    end
    if string.sub(s, k, k) == '"' then
      return k + 1
    end
    j = k + 2 -- skip the escaped character
  end
end

-- Index just past the JSON value starting at i.
local function skip_value(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then
    return skip_string(s, i)
  end
  if c ~= "{" and c ~= "[" then
    return string.find(s, "[,}%] \t\r\n]", i) or (#s + 1) -- number, true, false, null
  end
  local depth, j = 0, i
  while true do
    local k = string.find(s, '[%[%]{}"]', j)
    if k == nil then
      return nil
    end
    local d = string.sub(s, k, k)
    if d == '"' then
      j = skip_string(s, k)
      if j == nil then
        return nil
      end
    else
      depth = (d == "{" or d == "[") and depth + 1 or depth - 1
      j = k + 1
      if depth == 0 then
        return j
      end
    end
  end
end

-- The JSON text of member `name` of the object `s`, or nil.
local function json_member(s, name)
  local i = skip_blank(s, 1)
  if i == nil or string.sub(s, i, i) ~= "{" then
    return nil
  end
  i = i + 1
  while true do
    i = skip_blank(s, i)
    if i == nil then
      return nil
    end
    local c = string.sub(s, i, i)
    if c == "," then
      i = skip_blank(s, i + 1)
      if i == nil then
        return nil
      end
      c = string.sub(s, i, i)
    end
    if c ~= '"' then
      return nil -- "}" (not found) or malformed
    end
    local key_end = skip_string(s, i)
    if key_end == nil then
      return nil
    end
    local key = string.sub(s, i + 1, key_end - 2)
    i = skip_blank(s, key_end)
    if i == nil or string.sub(s, i, i) ~= ":" then
      return nil
    end
    local value_start = skip_blank(s, i + 1)
    if value_start == nil then
      return nil
    end
    local value_end = skip_value(s, value_start)
    if value_end == nil then
      return nil
    end
    if key == name then
      return string.sub(s, value_start, value_end - 1)
    end
    i = value_end
  end
end

-- The JSON text at dotted `path` in `s`. `sole`: the reply message has no other field, so the
-- transcoder printed exactly {"<path>":<value>} and the value is cut out without scanning.
local function json_path(s, path, sole)
  if sole then
    local prefix = '{"' .. path .. '":'
    if string.sub(s, 1, #prefix) == prefix and string.sub(s, -1) == "}" then
      return string.sub(s, #prefix + 1, -2)
    end
  end
  for name in string.gmatch(path, "[^.]+") do
    s = json_member(s, name)
    if s == nil then
      return nil
    end
  end
  return s
end

-- The filter ------------------------------------------------------------------------------------

-- 4. Trace ids for the access log: those of the client's W3C `traceparent`, when it sent one.
function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local method = headers:get(":method")
  if method ~= "GET" and method ~= "HEAD" and not is_grpc(headers:get("content-type")) then
    local token = headers:get("x-request-id")
    if token ~= nil then
      request_handle:streamInfo():dynamicMetadata():set("ossa", "consistency", token)
    end
  end
  local parent = headers:get("traceparent")
  if parent == nil then
    return
  end
  local trace_id, span_id = string.match(parent, "^%x%x%-(%x+)%-(%x+)%-%x%x$")
  if trace_id ~= nil and #trace_id == 32 and #span_id == 16 then
    local meta = request_handle:streamInfo():dynamicMetadata()
    meta:set("ossa", "trace_id", trace_id)
    meta:set("ossa", "span_id", span_id)
  end
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  if is_grpc(headers:get("content-type")) then
    return
  end
  drop_grpc_headers(headers)
  local ossa = response_handle:streamInfo():dynamicMetadata():get("ossa")
  if ossa ~= nil and ossa["consistency"] ~= nil then
    headers:replace(CONSISTENCY, ossa["consistency"])
  end
  local code = headers:get(HTTP_CODE)
  if code ~= nil then
    headers:remove(HTTP_CODE)
  end
  -- Only a successful reply changes: an error keeps its status and {code, message, details} body.
  local no_content, field, sole = false, nil, false
  if headers:get(":status") == "200" then
    local route = response_handle:metadata()
    if code == nil then
      code = status_text(route:get("http_status"))
    end
    if code ~= nil and string.match(code, "^[2-5]%d%d$") then
      headers:replace(":status", code)
      no_content = code == "204"
    end
    if no_content then
      headers:remove("content-type")
      headers:remove("content-length")
    else
      field = route:get("response_body")
      sole = route:get("response_body_sole") == true
    end
  end
  -- Headers are done: body() yields, and `headers` cannot be used after it.
  if no_content or field ~= nil then
    local body = response_handle:body()
    if body ~= nil and body:length() > 0 then
      if no_content then
        body:setBytes("")
        response_handle:headers():remove("content-length") -- setBytes() sets it; a 204 has none
      else
        local member = json_path(body:getBytes(0, body:length()), field, sole)
        if member ~= nil then
          body:setBytes(member)
        end
      end
    end
  end
  -- HTTP/2 clients would see the gRPC status trailers.
  local trailers = response_handle:trailers()
  if trailers ~= nil then
    drop_grpc_headers(trailers)
  end
end
