"""The online state behind the service: in process (one worker) or in Redis (several)."""
