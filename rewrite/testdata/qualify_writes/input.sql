INSERT INTO audit_log SELECT id, note FROM audit_log; DELETE FROM audit_log USING countries WHERE audit_log.note = countries.name; COPY countries TO STDOUT; COPY audit_log FROM STDIN
