-- The Prefect server's own database beside ModelPulse's (run once by the postgres image at first start).
CREATE DATABASE prefect OWNER modelpulse;
