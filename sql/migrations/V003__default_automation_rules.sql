-- V003: the default automation rules (DESIGN §7). Weekend mode auto-confirms above 70%
-- confidence, weekdays above 85%; events over 10 stores or 5,000 units of absolute excess, and
-- Data Errors (which change the data itself), always go to an analyst.
INSERT INTO automation_rules_log VALUES
    ('weekend-70', 'Weekend mode: auto-confirm above 70% confidence', 'weekend', 0.70, 10, 5000.0,
     ['Data Error'], true, TIMESTAMP '2025-01-01T00:00:00Z'),
    ('weekday-85', 'Weekdays: auto-confirm above 85% confidence', 'weekday', 0.85, 10, 5000.0,
     ['Data Error'], true, TIMESTAMP '2025-01-01T00:00:00Z');
