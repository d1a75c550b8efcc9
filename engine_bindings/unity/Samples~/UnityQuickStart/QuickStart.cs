using EngineBridge;
using EngineBridge.Unity;
using UnityEngine;

/// <summary>
/// Add this next to an <see cref="EngineBridgeRunner"/> in your first scene: it reads a config value, follows
/// its changes, tracks a few events and grants verified purchases. Every call returns at once; callbacks arrive
/// in the runner's Update.
/// </summary>
public sealed class QuickStart : MonoBehaviour
{
    private System.IDisposable configSubscription;
    private int maxLives = 3;
    private int gems;
    private int attempt;

    private void Start()
    {
        var bridge = EngineBridgeRunner.Client;
        // Called with the current value at the next frame if it is known, then at every change.
        configSubscription = bridge.SubscribeConfig("max_lives", (key, value) =>
        {
            maxLives = bridge.GetInt("max_lives", 3);
            Debug.Log("max lives: " + maxLives + ", difficulty: " + bridge.GetString("difficulty", "normal"));
        });
        // Verdicts of purchases an earlier run made but quit before hearing about.
        bridge.PurchaseVerified += Grant;
        attempt++;
        bridge.TrackProgression(ProgressionStatus.Start, "world01", "level01");
        bridge.TrackDesign("ui:scene_loaded", Time.realtimeSinceStartup);
    }

    private void Update()
    {
        if (Input.GetKeyDown(KeyCode.Space)) EngineBridgeRunner.Client.TrackDesign("input:jump");
    }

    public void OnLevelComplete(int score)
    {
        // GameAnalytics wants the attempt on Fail and Complete: without it the event would be refused (a warning
        // in the console, and ProviderRefused).
        EngineBridgeRunner.Client.TrackProgression(ProgressionStatus.Complete, "world01", "level01", score: score, attemptNum: attempt);
        EngineBridgeRunner.Client.TrackResource(ResourceFlow.Source, "gold", 50, "reward", "level_complete");
    }

    /// <summary>From your store plugin: the order id, the purchase data in base64 and its signature.</summary>
    public void OnPurchase(string orderId, string receiptBase64, string signature)
    {
        EngineBridgeRunner.Client.TrackBusiness("USD", 199, "gems", "small_pack", "shop");
        EngineBridgeRunner.Client.VerifyPurchase(
            new Purchase { Id = orderId, Store = PurchaseStore.GooglePlay, Receipt = receiptBase64, Signature = signature, PriceUsd = 1.99 },
            Grant);
    }

    /// <summary>
    /// Each purchase id reaches this once per run, but PurchaseVerified also repeats verdicts an earlier run
    /// granted: the granted ids are kept in PlayerPrefs.
    /// </summary>
    private void Grant(PurchaseResult result)
    {
        if (!result.Ok)
        {
            Debug.LogWarning(result);   // refused before verification (e.g. not_configured): nothing to grant
            return;
        }
        string key = "granted:" + result.Id;
        if (!result.ShouldGrant || PlayerPrefs.HasKey(key)) return;
        PlayerPrefs.SetInt(key, 1);
        PlayerPrefs.Save();
        gems += 100;
        Debug.Log("granted 100 gems for " + result.Id + "; now " + gems);
    }

    private void OnDestroy()
    {
        if (configSubscription != null) configSubscription.Dispose();
        if (EngineBridgeRunner.Client != null) EngineBridgeRunner.Client.PurchaseVerified -= Grant;
    }
}
