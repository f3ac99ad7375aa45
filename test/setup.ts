// Test-wide setup: the pass driver verifies the IR after every pass when TFC_VERIFY is set
// (the driver reads it through PassContext, never a pass itself).
process.env['TFC_VERIFY'] = '1';
