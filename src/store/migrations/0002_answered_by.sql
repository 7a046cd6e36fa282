-- Issue 6: the desk member who accepted a bridged call (NULL when nobody did).
ALTER TABLE calls ADD COLUMN answered_by TEXT;
