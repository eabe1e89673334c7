SET search_path = public; SHOW search_path; RESET ALL; SELECT version(), current_setting('work_mem'); SET LOCAL statement_timeout = '5s'
