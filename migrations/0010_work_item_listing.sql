-- The work item listing of the admin UI and GET /api/admin/work-items: newest first across
-- every instance, filtered by status, paged by (created_at, id).
CREATE INDEX idx_work_items_recent ON work_items (created_at, id);
CREATE INDEX idx_work_items_status ON work_items (status, created_at, id);
