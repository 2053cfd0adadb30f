"""The platform's error codes (exchanger-api.md section 3) and the error the API answers with."""

FIELD_INVALID = 6231546409213868
AMOUNT_NOT_NUMBER = 5071545873252155
AMOUNT_NOT_POSITIVE = 1661545348963371
AMOUNT_BELOW_MIN = 7701545348962387
AMOUNT_ABOVE_MAX = 3631545348962766
ABOVE_RESERVE = 9951545348963165
ROUTE_UNAVAILABLE = 6801545277215051
ANTI_FLOOD = 5030000
NOT_AUTHORISED = 40301
MAINTENANCE = 5555555555555555
CAPTCHA_REQUIRED = 1601588666628861

# Nothing public shows the codes for these; the sandbox picks its own, in the platform's style.
ORDER_NOT_FOUND = 4041000000000001
STATUS_CHANGE_NOT_ALLOWED = 4091000000000001
BAD_REQUEST = 4001000000000001
UNKNOWN_METHOD = 4041000000000002


class ApiError(Exception):
    """An error the API reports in the platform's envelope, with HTTP 200."""

    def __init__(self, code, message, obj=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.object = obj

    def envelope(self):
        error = {
            "apiError": True,
            "errorType": "api",
            "level": 0,
            "errorCode": self.code,
            "message": self.message,
        }
        if self.object is not None:
            error["object"] = self.object
        return {"success": False, "error": error}
