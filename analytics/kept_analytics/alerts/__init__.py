"""Alert rules over the analytics (evaluated under the analytics lease) and the delivery
of their notifications to receivers: a signed webhook, Slack and PagerDuty."""
