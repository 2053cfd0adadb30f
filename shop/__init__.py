"""The shop: catalogue, cart and checkout paid through an exchanger of the platform."""
