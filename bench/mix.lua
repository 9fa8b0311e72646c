-- The ChatKit request mix of bench/load.py for wrk: one virtual user per wrk thread (run wrk
-- with -t N -c N). Per user, in a loop: threads.create (streamed), an upload,
-- threads.add_user_message with the attachment (streamed), items.list, another message,
-- items.list, threads.list. done() writes every acknowledged and rejected message and the
-- latency percentiles to the file named by WRK_OUT, for bench/side_by_side.py's data check.

local counter = 0
local threads = {}

function setup(thread)
   counter = counter + 1
   thread:set("uid", counter)
   table.insert(threads, thread)
end

function init(args)
   user = (args[1] or "run") .. "-u" .. uid
   step = 0
   n = 0
   thread_id = nil
   attachment = nil
   text = nil
   acked = ""
   rejected = ""
   s4xx = 0
   s5xx = 0
   headers = { ["Content-Type"] = "application/json", ["x-user-id"] = user }
   boundary = "ckbenchboundary"
   upload_headers = {
      ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
      ["x-user-id"] = user,
   }
   upload_body = "--" .. boundary .. "\r\n"
      .. 'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
      .. "Content-Type: text/plain\r\n\r\n"
      .. string.rep("load test attachment\n", 20) .. "\r\n--" .. boundary .. "--\r\n"
end

local function input(t, attachments)
   return '{"content":[{"type":"input_text","text":"' .. t .. '"}],"attachments":['
      .. attachments .. '],"inference_options":{}}'
end

local function post(body)
   return wrk.format("POST", "/chatkit", headers, body)
end

function request()
   if step == 0 then
      text = user .. " message " .. n
      n = n + 1
      return post('{"type":"threads.create","params":{"input":' .. input(text, "") .. "}}")
   elseif step == 1 then
      return wrk.format("POST", "/chatkit/attachments/upload", upload_headers, upload_body)
   elseif step == 2 or step == 4 then
      text = user .. " message " .. n
      n = n + 1
      local attachments = ""
      if step == 2 and attachment then attachments = '"' .. attachment .. '"' end
      return post('{"type":"threads.add_user_message","params":{"thread_id":"' .. thread_id
         .. '","input":' .. input(text, attachments) .. "}}")
   elseif step == 3 or step == 5 then
      return post('{"type":"items.list","params":{"thread_id":"' .. thread_id
         .. '","limit":20,"order":"desc"}}')
   else
      return post('{"type":"threads.list","params":{"limit":20,"order":"desc"}}')
   end
end

local function streamed_ok(status, body)
   return status == 200 and body:find('"type":"error"', 1, true) == nil
end

function response(status, hdrs, body)
   if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 end
   if step == 0 then
      local tid = body:match('"thread":{"id":"([^"]+)"')
      if streamed_ok(status, body) and tid then
         acked = acked .. tid .. "\t" .. text .. "\n"
         thread_id = tid
         step = 1
      else
         rejected = rejected .. (tid or "-") .. "\t" .. text .. "\n"
      end
      return
   elseif step == 1 then
      attachment = nil
      if status == 200 then attachment = body:match('"id":"([^"]+)"') end
   elseif step == 2 or step == 4 then
      if streamed_ok(status, body) then
         acked = acked .. thread_id .. "\t" .. text .. "\n"
      else
         rejected = rejected .. thread_id .. "\t" .. text .. "\n"
      end
   end
   step = (step + 1) % 7
end

function done(summary, latency, requests)
   local out = io.open(os.getenv("WRK_OUT"), "w")
   out:write("requests\t" .. summary.requests .. "\n")
   out:write("duration_us\t" .. summary.duration .. "\n")
   out:write("errors\t" .. (summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout) .. "\n")
   out:write("non2xx\t" .. summary.errors.status .. "\n")
   out:write("p50_us\t" .. latency:percentile(50) .. "\n")
   out:write("p99_us\t" .. latency:percentile(99) .. "\n")
   for _, t in ipairs(threads) do
      local u = t:get("user")
      for line in string.gmatch(t:get("acked"), "[^\n]+") do
         out:write("acked\t" .. u .. "\t" .. line .. "\n")
      end
      for line in string.gmatch(t:get("rejected"), "[^\n]+") do
         out:write("rejected\t" .. u .. "\t" .. line .. "\n")
      end
      out:write("s4xx\t" .. t:get("s4xx") .. "\n")
      out:write("s5xx\t" .. t:get("s5xx") .. "\n")
   end
   out:close()
end
