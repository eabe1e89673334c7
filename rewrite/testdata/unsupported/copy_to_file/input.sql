COPY countries TO '/tmp/x'
