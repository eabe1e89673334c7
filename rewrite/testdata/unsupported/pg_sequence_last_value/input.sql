SELECT pg_sequence_last_value('mandate.consent_history_seq_seq'::regclass)
