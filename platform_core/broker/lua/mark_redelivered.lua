-- Shared: mark_redelivered(item), the one redelivery marking. As kombu's
-- Channel._do_restore_message: headers.redelivered and properties.delivery_info.redelivered
-- set to true (Celery reads the latter: Request.delivery_info, trace's dedupe). The JSON
-- text is edited, not decoded and encoded: cjson would turn empty arrays into objects.
-- The first "headers" / "delivery_info" object is the envelope's (kombu writes the body
-- as a string, and an escaped quote inside a string cannot match the pattern). An object
-- that is missing is left so; the consumer's checks judge the item on delivery.
local function set_redelivered(item, object)
    local marked = string.gsub(item, '("' .. object .. '"%s*:%s*{)(%s*)(}?)',
        function(opening, space, closing)
            if closing == '}' then return opening .. '"redelivered": true}' end
            return opening .. '"redelivered": true, ' .. space
        end, 1)
    return marked
end

local function mark_redelivered(item)
    return set_redelivered(set_redelivered(item, 'headers'), 'delivery_info')
end
