"""Training jobs (lead score, milestone close, churn): built in the training issue."""
