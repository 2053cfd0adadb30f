"""The API's OpenAPI 3.1 description, served at /api/v1/openapi.json.

Kept as a Python dict beside the code it describes; tests/shop/test_merchant_api.py checks every route
and error code here against the real answers, so the two cannot drift apart unnoticed.
"""

PAYMENT_STATES = [
    "open",
    "pending",
    "processing",
    "paid",
    "review",
    "refunded",
    "disabled",
    "expired",
]
ORDER_STATES = ["pending", "processing", "paid", "failed", "refunded", "cancelled", "review"]
ERROR_CODES = [
    "missing_api_key",
    "invalid_api_key",
    "revoked_api_key",
    "invalid_json",
    "bad_request",
    "invalid_field",
    "not_found",
    "method_not_allowed",
    "idempotency_conflict",
    "body_too_large",
    "unsupported_media_type",
    "rate_limited",
    "internal_error",
]

NULLABLE_STRING = {"type": ["string", "null"]}


def error(description, *codes):
    return {
        "description": f"{description} (code: {', '.join(codes)})",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "x-error-codes": list(codes),
            }
        },
    }


AUTH_ERRORS = {
    "401": error(
        "No key, a key that is not valid, or a revoked one",
        "missing_api_key",
        "invalid_api_key",
        "revoked_api_key",
    ),
    "429": {
        **error("Too many requests with this key", "rate_limited"),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the key's next window",
                "schema": {"type": "integer"},
            }
        },
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Shop payments API",
        "version": "1",
        "description": (
            "Create payments for the shop's buyers to pay through the exchanger, and read"
            " their state. Authenticate with an API key from the console"
            " (Console > API keys) as `Authorization: Bearer <key>`. Amounts are decimal"
            " strings in the shop's settlement currency."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/payments": {
            "post": {
                "operationId": "createPayment",
                "summary": "Create a single-use payment and get the URL to send the buyer to",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": (
                            "A retry with the same key and body answers as the first did"
                            " (header Idempotent-Replayed: true); the same key with another"
                            " body is refused with 409. Keys are per API key."
                        ),
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewPayment"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "The payment was created (or this is a retry's replay)",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}
                        },
                    },
                    "400": error("The body is not a JSON object", "invalid_json"),
                    "409": error(
                        "The Idempotency-Key was used with another body", "idempotency_conflict"
                    ),
                    "413": error("The body is larger than 16 KiB", "body_too_large"),
                    "415": error("The body is not application/json", "unsupported_media_type"),
                    "422": error("A field is missing or not valid", "invalid_field"),
                    **AUTH_ERRORS,
                },
            },
            "get": {
                "operationId": "listPayments",
                "summary": "Payments, newest first, a page at a time (keyset paging)",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "description": "next_after of the previous page: the payments older than it",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "A page of payments",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PaymentList"}
                            }
                        },
                    },
                    "422": error("limit or after is not valid", "invalid_field"),
                    **AUTH_ERRORS,
                },
            },
        },
        "/payments/{id}": {
            "get": {
                "operationId": "getPayment",
                "summary": "One payment and its state",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "The payment",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}
                        },
                    },
                    "404": error("No payment has this id", "not_found"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document"}},
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "NewPayment": {
                "type": "object",
                "additionalProperties": False,
                "required": ["amount", "description", "reference"],
                "properties": {
                    "amount": {
                        "type": "string",
                        "pattern": "^[0-9]{1,10}(\\.[0-9]{1,8})?$",
                        "description": "In the settlement currency, more than 0",
                        "examples": ["12.50"],
                    },
                    "description": {"type": "string", "minLength": 1, "maxLength": 200},
                    "reference": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "Your own id for this payment (an invoice number)",
                    },
                    "buyer_email": {"type": ["string", "null"], "maxLength": 254},
                    "return_url": {
                        "type": ["string", "null"],
                        "maxLength": 2000,
                        "description": (
                            "http(s). Shown to the buyer as a link on the order page once the"
                            " order is settled; the shop never redirects there by itself."
                        ),
                    },
                },
            },
            "Payment": {
                "type": "object",
                "required": [
                    "id",
                    "source",
                    "state",
                    "amount",
                    "currency",
                    "description",
                    "reference",
                    "buyer_email",
                    "return_url",
                    "single_use",
                    "expires_at",
                    "disabled",
                    "checkout_url",
                    "created_at",
                    "orders",
                ],
                "properties": {
                    "id": {"type": "integer"},
                    "source": {"enum": ["api", "link"]},
                    "state": {"enum": PAYMENT_STATES},
                    "amount": {"type": "string"},
                    "currency": {"type": "string"},
                    "description": {"type": "string"},
                    "reference": NULLABLE_STRING,
                    "buyer_email": NULLABLE_STRING,
                    "return_url": NULLABLE_STRING,
                    "single_use": {"type": "boolean"},
                    "expires_at": NULLABLE_STRING,
                    "disabled": {"type": "boolean"},
                    "checkout_url": {"type": "string"},
                    "created_at": {"type": "string"},
                    "orders": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["token", "state", "created_at", "received"],
                            "properties": {
                                "token": {"type": "string"},
                                "state": {"enum": ORDER_STATES},
                                "created_at": {"type": "string"},
                                "received": NULLABLE_STRING,
                            },
                        },
                    },
                },
            },
            "PaymentList": {
                "type": "object",
                "required": ["data", "has_more", "next_after"],
                "properties": {
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Payment"}},
                    "has_more": {"type": "boolean"},
                    "next_after": {"type": ["integer", "null"]},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"enum": ERROR_CODES},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    }
                },
            },
        },
    },
}
